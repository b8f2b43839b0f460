"""Data: datasets sources → train/val/test splits → DataLoaders (images and audio rows), streaming, extra data."""
