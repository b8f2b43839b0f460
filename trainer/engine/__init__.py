"""One training run under Accelerate: run wiring, the loop, optimizer and loss, K folds."""
