"""The one exception type for bad user input: its message says what was wrong and what to do."""

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input (flags, dataset, model name): shown to the user as one line, without a traceback."""


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run a CLI main: a UserError becomes one line on stderr and exit code 2, not a traceback."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        os._exit(2)  # skip interpreter teardown: worker processes and dist groups may still be up
