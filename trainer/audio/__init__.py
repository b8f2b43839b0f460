"""Audio as images: decode any clip to a mono wave at the model's rate, then the log-mel front end (train = serve)."""
