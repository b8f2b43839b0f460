"""The checkpoint contract: what a checkpoint dir holds (contract), how it is written, read and described (card)."""
