"""The project as a pip package: built and installed (no dependencies re-resolved) into a fresh virtual environment
layered over this one, each console script answers --help from outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers.cli import REPO

pytestmark = pytest.mark.slow  # builds a wheel and creates a venv
SCRIPTS = ("timm-space-train", "timm-space-validate", "timm-space-export", "timm-space-preflight",
           "timm-space-compare", "timm-space-app")


def test_console_scripts_answer_help_from_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies come from this environment (a .pth line adds its site-packages after the new venv's own),
    # the project itself only from the wheel: the checkout is not on the new interpreter's path
    Path(purelib, "project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(REPO)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    code = "import trainer, space; print(trainer.__file__, space.__file__)"
    where = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert all(p.startswith(purelib) for p in where.split()), where  # the installed copy, not the checkout
    for script in SCRIPTS:
        proc = subprocess.run([str(venv / "bin" / script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (script, proc.stderr[-2000:])
