"""House rules that keep the code readable: file and function sizes, nothing heavy at import."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

SOURCES = sorted([*REPO.glob("trainer/**/*.py"), *REPO.glob("space/**/*.py"), *REPO.glob("bench/**/*.py"),
                  REPO / "app.py"])


def test_files_at_most_300_lines():
    long = {str(p.relative_to(REPO)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_functions_at_most_50_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not long, long


def test_importing_every_module_loads_no_model_or_data():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in SOURCES]
    code = ("import sys, timm, datasets\n"
            "def boom(*a, **k): raise SystemExit('loaded at import: ' + repr(a[:1]))\n"
            "timm.create_model = datasets.load_dataset = datasets.load_from_disk = boom\n"
            f"for m in {modules!r}:\n    __import__(m.removesuffix('.__init__'))\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
