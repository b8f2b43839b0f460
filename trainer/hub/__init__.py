"""The Hugging Face Hub: push a checkpoint in one commit, every-epoch pushes, a Space that serves it."""
