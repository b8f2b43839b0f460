"""The hardware this process may use (for thread and worker counts, plans and the labels of measured numbers)."""

import os


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: `taskset`, cgroups), not os.cpu_count()."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
