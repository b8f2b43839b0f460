"""Errors users see: UserError (what was wrong and what to do), the CLI exit and parser, secrets scrubbed by value
from every stream and artifact, and Hub/network failures mapped onto UserError with the token redacted."""

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

LOGIN_HINT = "run `hf auth login`, set HF_TOKEN, or pass --hub-token"


class UserError(Exception):
    """Bad input (flags, dataset, model name): shown to the user as one line, without a traceback."""


MASK = "***"
TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")  # the shape of a Hugging Face access token
TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret's value (a --hub-token, a YAML config's token) so that scrub() removes it everywhere."""
    if value and len(value.strip()) >= 4:  # shorter values would mask ordinary words
        _SECRETS.add(value.strip())


@functools.lru_cache(maxsize=4)
def _stored_token(path: str) -> str | None:
    """The token `hf auth login` stored (read as a file: no huggingface_hub import, no network)."""
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def known_secrets() -> set[str]:
    """Every token value this process may hold: registered ones, HF_TOKEN and the stored login."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    stored = _stored_token(os.environ.get("HF_TOKEN_PATH") or os.path.join(hf_home, "token"))
    values = _SECRETS | {os.environ.get(k, "").strip() for k in TOKEN_ENV} | {stored or ""}
    return {v for v in values if len(v) >= 4}


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """text without any known token value or anything shaped like a Hub token (by value, whatever the flag)."""
    for secret in secrets if secrets is not None else sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return TOKEN_PATTERN.sub(MASK, text)


def scrub_artifact(obj):
    """A JSON-able object as it may be written or pushed: tokens scrubbed, paths under the working directory made
    relative to it and the home directory shown as ~ (a user name or a machine's layout is not the data's name)."""
    secrets = sorted(known_secrets(), key=len, reverse=True)
    home, cwd = os.path.expanduser("~").rstrip(os.sep), os.getcwd().rstrip(os.sep)

    def walk(o):
        if isinstance(o, str):
            text = scrub(o, secrets)
            text = text.replace(cwd + os.sep, "") if cwd else text
            return text.replace(home + os.sep, "~" + os.sep) if home else text
        if isinstance(o, dict):
            return {walk(k): walk(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        return o

    return walk(obj)


class ScrubbedStream:
    """A text stream whose writes pass through scrub(): stdout/stderr of every CLI (logs, progress, tracebacks)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def install_scrubbing() -> None:
    """Route sys.stdout and sys.stderr through scrub() (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ScrubbedStream):
            setattr(sys, name, ScrubbedStream(stream))


class CLIParser(argparse.ArgumentParser):
    """argparse without prefix matching (--hub-tok is not --hub-token) and without echoing unknown values."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):  # argparse lists the values too, a token among them
            flags = [w.split("=", 1)[0] for w in message.split(":", 1)[1].split() if w.startswith("-")]
            message = f"unrecognized arguments: {' '.join(flags) or '(values not shown)'}; see --help"
        super().error(message)


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run a CLI main with scrubbed output: a UserError becomes one line on stderr and exit 2, not a traceback."""
    install_scrubbing()
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
    """Never echo a token, even inside an error from the server (this one and every other known one)."""
    register_secret(token)
    return scrub(text)


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
