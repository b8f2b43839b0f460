"""A local test double of the Hugging Face Hub HTTP API (server.py); used only by tests."""
