"""The one exception type for bad user input: its message says what was wrong and what to do."""


class UserError(Exception):
    """Bad input (flags, dataset, model name): shown to the user as one line, without a traceback."""
