"""One dataclass-field helper for every config section: the help text is both the comment and the CLI help."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def help_field(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field carrying its CLI help (and argparse extras such as action/metavar) in its metadata."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})
