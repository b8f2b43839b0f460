"""House rules that keep the code readable: the import layering, no import cycles, size smells, nothing heavy at
import, and the Space's declared code list being closed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers.cli import REPO

SOURCES = sorted([*REPO.glob("trainer/**/*.py"), *REPO.glob("space/**/*.py"), *REPO.glob("bench/**/*.py"),
                  REPO / "app.py"])
PACKAGES = ("trainer", "space")


def module_name(path: Path) -> str:
    """trainer/data/images.py → trainer.data.images; a package's __init__.py → the package."""
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def project_imports(path: Path) -> set[str]:
    """The trainer/space modules a file imports anywhere in it (module level and inside functions alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from space import classifier` imports the submodule space.classifier when there is one
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (names that are not modules, e.g. functions, are dropped)."""
    files = {module_name(p): p for p in SOURCES if p.relative_to(REPO).parts[0] in PACKAGES}
    return {m: {i for i in project_imports(p) if i in files and i != m} for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_counting_imports_inside_functions():
    graph = import_graph()
    assert "trainer.engine.run" in graph and "trainer.data.images" in graph["trainer.engine.run"] | {
        d for m in graph["trainer.engine.run"] for d in graph[m]}
    assert not cycles(graph), cycles(graph)


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: acyclic siblings, the layers, what space/ may import."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "0 broken" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_space_sources_are_closed_under_imports():
    """Every project module the shipped Space code imports (anywhere in a file) is shipped too."""
    from trainer.hub.space import app_files

    shipped = set(app_files())
    missing = set()
    for rel in (f for f in shipped if f.endswith(".py")):
        for name in project_imports(REPO / rel):
            path = name.replace(".", "/")
            candidates = [f"{path}.py", f"{path}/__init__.py"]
            if any((REPO / c).exists() for c in candidates) and not any(c in shipped for c in candidates):
                missing.add(f"{rel} imports {name}")
    assert not missing, sorted(missing)
    assert "trainer/audio/frontend.py" in shipped and not any(f.startswith("trainer/engine") for f in shipped)


def test_files_at_most_500_lines():
    """A smell detector, not a shape: a file this long likely holds two jobs."""
    long = {str(p.relative_to(REPO)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_functions_at_most_60_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not long, long


def test_importing_every_module_loads_no_model_or_data():
    modules = [module_name(p) for p in SOURCES if p.stem != "__main__"]  # __main__ runs its CLI by design
    code = ("import sys, timm, datasets\n"
            "def boom(*a, **k): raise SystemExit('loaded at import: ' + repr(a[:1]))\n"
            "timm.create_model = datasets.load_dataset = datasets.load_from_disk = boom\n"
            f"for m in {modules!r}:\n    __import__(m)\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
