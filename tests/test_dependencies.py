"""The declared dependencies (pyproject.toml) against the exact pins (requirements.txt, tests/requirements.txt), the
resolver and what the installed distributions put in site-packages."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.cli import REPO

# Top-level names that would shadow this repo's packages, or that a wheel should never install at the top level
STRAY = {"tests", "test", "testing", "docs", "examples", "benchmarks", "bench", "scripts", "trainer", "space", "app"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _declared(extras: bool = True) -> list[Requirement]:
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extras:
        reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group]
    return reqs


def _pins(*files: str) -> dict[str, str]:
    """{canonical name: pinned version} of requirements files (`name==version` lines, comments dropped)."""
    pins = {}
    for name in files:
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                req = Requirement(line)
                (spec,) = req.specifier
                assert spec.operator == "==", f"{name}: {line!r} is not an exact pin"
                pins[canonicalize_name(req.name)] = spec.version
    return pins


def _minimum(req: Requirement) -> str:
    """The version a requirement's lower bound names (>= or ==)."""
    lows = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert len(lows) == 1, f"{req} needs exactly one lower bound"
    return lows[0]


def test_every_declared_dependency_has_a_lower_bound_and_the_pins_meet_the_ranges():
    pins = _pins("requirements.txt", "tests/requirements.txt")
    declared = _declared()
    names = {canonicalize_name(r.name) for r in declared}
    assert "numpy" in names and "iterative-stratification" not in names
    for req in declared:
        _minimum(req)
        pin = pins.get(canonicalize_name(req.name))
        if pin is not None:  # a pin below a declared bound would test a release users can never get
            assert req.specifier.contains(pin, prereleases=True), f"{req.name}=={pin} is outside {req.specifier}"
    for name in pins:
        assert name in names, f"{name} is pinned but not declared in pyproject.toml (dependencies or an extra)"


def test_bench_only_packages_are_an_extra_not_a_test_requirement():
    assert "mlxtend" in {canonicalize_name(Requirement(r).name) for r in _project()["optional-dependencies"]["bench"]}
    assert "mlxtend" not in _pins("tests/requirements.txt") | _pins("requirements.txt")
    runtime_and_tests = [p for d in ("trainer", "space", "tests") for p in (REPO / d).rglob("*.py")
                         if p.resolve() != Path(__file__).resolve()]
    assert not [p for p in runtime_and_tests if "import mlxtend" in p.read_text() or "from mlxtend" in p.read_text()]


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    """The top-level import names a distribution installs (top_level.txt, else the folders of its RECORD)."""
    names = set((dist.read_text("top_level.txt") or "").split())
    for f in dist.files or []:
        if len(f.parts) > 1 and f.parts[1] == "__init__.py" and not f.parts[0].endswith((".dist-info", ".data")):
            names.add(f.parts[0])
    return names


def test_no_installed_distribution_puts_a_stray_top_level_package_in_site_packages():
    """A `tests` package from a dependency shadows this repo's tests (iterative-stratification shipped one)."""
    stray = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name != "timm-space" and _top_levels(dist) & STRAY:
            stray[name] = sorted(_top_levels(dist) & STRAY)
    assert not stray, f"installed distributions with stray top-level packages: {stray}"


def test_the_installed_pins_meet_the_declared_ranges_and_each_others_requirements():
    """Offline: the environment `make install` built from the pins satisfies every declared range, and pip finds no
    installed distribution whose requirements another one breaks (timm-space's own installed metadata may predate
    an edit of pyproject.toml, so its ranges are read from the file instead)."""
    for req in _declared(extras=False):
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"installed {req.name} {version} is outside {req}"
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    broken = [line for line in proc.stdout.splitlines() if line and not line.lower().startswith("timm-space ")
              and "no broken requirements" not in line.lower()]
    assert not broken, broken


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TIMM_SPACE_RESOLVE_INDEX"), reason="needs a package index holding the old "
                    "releases (TIMM_SPACE_RESOLVE_INDEX=<index url>); the test suite runs offline")
def test_declared_minimums_resolve_together(tmp_path):
    """Every dependency at exactly its declared lower bound (`name==min`): pip's resolver finds one installable set
    (a dry run, nothing installed). Resolved on 2026-12-06 against PyPI (about 2 minutes: it downloads the wheels
    that have no separate metadata); it checks the declared requirements of those releases, not that they run."""
    minimums = [f"{r.name}=={_minimum(r)}" for r in _declared(extras=False)]
    report = _resolve(minimums, ["--index-url", os.environ["TIMM_SPACE_RESOLVE_INDEX"]], tmp_path)
    picked = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    for line in minimums:
        req = Requirement(line)
        assert req.specifier.contains(picked[canonicalize_name(req.name)]), (line, picked.get(req.name))


def _resolve(requirements: list[str], index_args: list[str], tmp_path) -> dict:
    """pip install --dry-run --ignore-installed --report of requirements (resolved, nothing installed)."""
    (tmp_path / "req.txt").write_text("\n".join(requirements) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(tmp_path / "report.json"), *index_args, "-r", str(tmp_path / "req.txt")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "report.json").read_text())
