"""Shared test helpers: the CLI runner, tiny datasets, audio files and app clients."""
