"""The project as a pip package: the wheel built (non-editable) and installed, no dependencies re-resolved, into a
fresh virtual environment layered over this one; from outside the checkout each console script answers --help, and
the installed `timm-space-train` trains, pushes and creates a Space that serves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests import test_hub
from tests.helpers.cli import REPO
from tests.test_hub import USER, hub_env, serve_space, upload_commits

pytestmark = pytest.mark.slow  # builds a wheel and creates a venv
hub = test_hub.hub  # the local Hub fixture, shared
SCRIPTS = ("timm-space-train", "timm-space-validate", "timm-space-export", "timm-space-preflight",
           "timm-space-compare", "timm-space-app")
TEMPLATE = ("app.py", "packages.txt", "requirements.txt")  # the repo-root files the wheel carries for a Space
TINY = ["--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained", "--max-steps", "2",
        "--max-train-samples", "64", "--max-eval-samples", "32", "--img-size", "32", "--latency-budget-ms", "100000"]


def sh(*args: str, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure show its output."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{args[:3]} exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel, built from a copy of the working tree (no stale build/ files of the checkout can leak in), and the
    venv it is installed in: {"src", "wheel", "venv", "purelib", "outside"} (outside: a cwd away from the checkout)."""
    root = tmp_path_factory.mktemp("package")
    src, dist, venv = root / "src", root / "dist", root / "venv"
    tree = sh("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
    for name in (n for n in tree if (REPO / n).is_file()):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    # this environment's setuptools builds it (no isolated build env to resolve); pip then installs the wheel alone
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src))
    sh(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = str(venv / "bin" / "python")
    purelib = sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    # the dependencies come from this environment (a .pth line adds its site-packages after the new venv's own),
    # the project itself only from the wheel: the checkout is not on the new interpreter's path
    Path(purelib, "project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (wheel,) = dist.glob("timm_space-*.whl")
    sh(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", str(wheel))
    (outside := root / "elsewhere").mkdir()
    return {"src": src, "wheel": wheel, "venv": venv, "purelib": purelib, "outside": outside}


def test_console_scripts_answer_help_from_a_fresh_venv(installed):
    venv, outside = installed["venv"], installed["outside"]
    code = "import trainer, space; print(trainer.__file__, space.__file__)"
    where = sh(str(venv / "bin" / "python"), "-c", code, cwd=outside).stdout
    assert all(p.startswith(installed["purelib"]) for p in where.split()), where  # the installed copy
    for script in SCRIPTS:
        proc = sh(str(venv / "bin" / script), "--help", cwd=outside, timeout=180)
        assert "usage:" in proc.stdout, script


def test_wheel_adds_only_trainer_and_space_to_site_packages(installed):
    """The wheel's own RECORD: two packages and its dist-info in site-packages; the Space's files as data."""
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        record = [row.split(",")[0] for row in wheel.read(f"{info}/RECORD").decode().splitlines()]
        top_level = wheel.read(f"{info}/top_level.txt").decode().split()
    assert sorted(record) == sorted(names)
    data = info.replace(".dist-info", ".data")
    assert {n.split("/")[0] for n in record} == {"trainer", "space", info, data}  # no stray `tests` or `app`
    assert sorted(top_level) == ["space", "trainer"]
    assert sorted(n for n in record if n.startswith(data)) == [f"{data}/data/share/timm-space/{t}" for t in TEMPLATE]
    installed_record = Path(installed["purelib"], info, "RECORD").read_text().splitlines()
    inside = {row.split(",")[0].split("/")[0] for row in installed_record if not row.startswith("../")}
    assert inside == {"trainer", "space", info}


def test_installed_train_pushes_a_space_that_serves(installed, hub, tmp_path):
    """Outside the checkout, the installed console script trains 2 steps, pushes the model and creates its Space;
    the Space's files are the checkout's own, and the Space's app.py serves the pushed model."""
    from trainer.checkpoint.contract import SPACE_CONFIG
    from trainer.hub.space_repo import app_files, space_requirements

    repo, space, out = f"{USER}/installed-model", f"{USER}/installed-demo", tmp_path / "run"
    env = hub_env(hub, tmp_path / "home")
    env.pop("PYTHONPATH", None)
    sh(str(installed["venv"] / "bin" / "timm-space-train"), *TINY, "--output-dir", str(out), "--push-to-hub",
       "--hub-model-id", repo, "--create-space", space, cwd=installed["outside"], env=env, timeout=600)
    (commit,) = upload_commits(hub, repo)
    model_sha = commit["id"]
    assert {"config.json", "model.safetensors"} <= set(hub.files(repo))
    files = hub.files(space, "space")
    for name in ("app.py", "packages.txt"):
        assert files[name] == (installed["src"] / name).read_bytes() == (REPO / name).read_bytes(), name
    assert files["requirements.txt"] == space_requirements().encode()  # the checkout's pins, e.g. timm's
    pins = dict(line.split("#")[0].strip().split("==") for line in (REPO / "requirements.txt").read_text()
                .splitlines() if "==" in line)
    assert f"timm=={pins['timm']}\n" in files["requirements.txt"].decode()
    # the Space's code is the tree the wheel was built from, file for file (.gitattributes: the Hub's, on create)
    code = app_files(installed["src"])
    assert set(files) - {".gitattributes"} == {*code, "README.md", "requirements.txt", "packages.txt", SPACE_CONFIG}
    assert [n for n in code if files[n] != (installed["src"] / n).read_bytes()] == []
    served = serve_space(files, tmp_path / "space", hub_env(hub, tmp_path / "visitor", token=None))
    assert served["ref"] == f"hf-hub:{repo}@{model_sha}" and served["source"] == "space_config.json"
    assert served["status"].startswith("✅") and served["label"] in served["labels"]
    assert served["labels"] == json.loads((out / "config.json").read_text())["label_names"]
