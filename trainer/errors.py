"""Errors users see: UserError (what was wrong and what to do), the CLI exit, and Hub/network failures mapped
onto UserError with the token redacted (used by the checkpoint reader and the Hub pushers alike)."""

import os
import sys
from collections.abc import Callable

LOGIN_HINT = "run `hf auth login`, set HF_TOKEN, or pass --hub-token"


class UserError(Exception):
    """Bad input (flags, dataset, model name): shown to the user as one line, without a traceback."""


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run a CLI main: a UserError becomes one line on stderr and exit code 2, not a traceback."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        os._exit(2)  # skip interpreter teardown: worker processes and dist groups may still be up


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub call raises: huggingface_hub's HTTP client errors (HfHubHTTPError included) and OSError."""
    import httpx2  # huggingface_hub 2.x's HTTP client; imported on use, as every CLI imports this module at start

    return httpx2.HTTPError, OSError


def redact_token(text: str, token: str | None) -> str:
    """Never echo a token, even inside an error from the server."""
    return text.replace(token, "***") if token else text


def explain(exc: BaseException, action: str, token: str | None, retry: str = "") -> UserError:
    """Turn a Hub/network failure into one message that says what to do next (token never included)."""
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT", "the Hub")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        msg = f"{action}: the Hub rejected the token (401). Check it: {LOGIN_HINT}."
    elif status == 403:
        msg = f"{action}: the token may not write there (403). Use a write token or a namespace you belong to."
    elif isinstance(exc, HfHubHTTPError):
        msg = f"{action}: the Hub answered {status}: {str(exc).splitlines()[0][:300]}"
    else:
        msg = f"{action}: could not reach {endpoint} ({type(exc).__name__}: {str(exc)[:200]})."
    return UserError(redact_token(msg + (f" {retry}" if retry else ""), token))
