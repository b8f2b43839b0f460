"""Run a command on a slowed machine: pinned to one core (`taskset -c 0`) that a CPU-bound sibling process shares,
with TIMM_SPACE_SLOWED=1 for the tests that scale their budgets (tests.helpers.cli.timed_budget).

    python -m tests.helpers.slowed COMMAND [ARG ...]      # what `make test-timing-slow` runs

The sibling is bounded in time (SIBLING_S) and stopped when the command ends, whatever its outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.helpers.cli import SLOWED

CORE = "0"
SIBLING_S = 3 * 3600  # the sibling ends by itself after this long even if this process is killed


def main(argv: list[str]) -> int:
    """Start the sibling on CORE, run argv pinned to CORE, stop the sibling; the command's exit status."""
    if not argv:
        raise SystemExit(__doc__)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the run to one core")
    spin = f"import time\nend = time.monotonic() + {SIBLING_S}\nwhile time.monotonic() < end: pass"
    sibling = subprocess.Popen(["taskset", "-c", CORE, sys.executable, "-c", spin])
    try:
        env = dict(os.environ, **{SLOWED: "1"})
        return subprocess.run(["taskset", "-c", CORE, *argv], env=env).returncode
    finally:
        sibling.kill()
        sibling.wait()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
