"""Peak memory of a process from /proc (Linux): reset the high-water mark, then read how far it rose."""

from __future__ import annotations

import re
from pathlib import Path


def kib(key: str, pid: int | str = "self") -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) in KiB."""
    return int(re.search(rf"{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def reset_peak(pid: int | str = "self") -> int:
    """Set the process's peak RSS (VmHWM) to its current RSS; return that RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return kib("VmRSS", pid)
