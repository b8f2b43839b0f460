"""`python tests/helpers/kill_during_install.py OUT NEW POINT`: install the checkpoint NEW over OUT and SIGKILL this
process at POINT (after_weights, after_config, before_manifest, after_manifest), as a power cut would."""

import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.checkpoint import write  # noqa: E402
from trainer.checkpoint.contract import STAGING_DIR  # noqa: E402

out, new, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
AFTER = {"after_weights": "model.safetensors", "after_config": "config.json", "after_manifest": "manifest.json"}
_replace = os.replace


def _dying_replace(src, dst):
    name = Path(dst).name
    if point == "before_manifest" and name == "manifest.json":
        os.kill(os.getpid(), signal.SIGKILL)
    _replace(src, dst)
    if AFTER.get(point) == name:
        os.kill(os.getpid(), signal.SIGKILL)


staging = out / STAGING_DIR
shutil.copytree(new, staging, ignore=shutil.ignore_patterns("state", "logs", ".*"))
write.os.replace = _dying_replace
write.install(staging, out)
print("installed without being killed")
