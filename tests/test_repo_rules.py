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
    from trainer.hub.space_repo import app_files

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


def documented_modules(block: str) -> set[str]:
    """The module paths a layout block names: `name.py` entries under their folder lines (`data/`), including
    several on one folder line and its continuation lines (`builtin/  a.py, b.py`)."""
    names, stack, last_dir = set(), [], None
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        tokens = line.split()
        if not tokens:
            continue
        if indent >= 24:  # a continuation of the entry above: its .py names belong to that entry's folder
            names |= {f"{last_dir}/{t.strip(',()')}" for t in tokens if last_dir and t.strip(",()").endswith(".py")}
            continue
        level = indent // 2
        stack = stack[:level]
        head = tokens[0]
        if head.endswith("/"):
            stack.append(head.rstrip("/"))
            last_dir = "/".join(stack)
            names |= {f"{last_dir}/{t.strip(',()')}" for t in tokens[1:] if t.strip(",()").endswith(".py")}
        elif head.endswith(".py"):
            names.add("/".join([*stack, head]))
            last_dir = None
    return names


def test_the_architecture_map_names_every_module():
    """docs/architecture.md's layout names every module of trainer/ and space/ (the map stays the territory)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    documented = documented_modules(block)
    modules = {str(p.relative_to(REPO)) for root in ("trainer", "space") for p in (REPO / root).rglob("*.py")
               if p.name != "__init__.py" and "metrics" not in p.parts}  # the evaluate modules: one line, by folder
    assert not modules - documented, sorted(modules - documented)
    gone = {m for m in documented if m.startswith(("trainer/", "space/")) and not (REPO / m).exists()}
    assert not gone, f"the map names modules that are gone: {sorted(gone)}"


def test_the_map_reader_reads_nested_folders_and_continuations():
    block = "trainer/\n  a.py  x\n  data/\n    b.py  y\n    builtin/  c.py (z),\n                          d.py\n"
    assert documented_modules(block) == {"trainer/a.py", "trainer/data/b.py", "trainer/data/builtin/c.py",
                                         "trainer/data/builtin/d.py"}


def test_one_name_per_module():
    """No two modules of trainer/ and space/ share a file name, and none is named like a top-level package: a
    file name says its room (the evaluate metric modules keep their folder's name, which evaluate.load needs)."""
    from collections import Counter

    names = Counter(p.stem for root in ("trainer", "space") for p in (REPO / root).rglob("*.py")
                    if p.stem not in ("__init__", "__main__") and "metrics" not in p.parts)
    twins = {name: n for name, n in names.items() if n > 1}
    assert not twins, twins
    assert not {"trainer", "space"} & set(names), "a module named like a top-level package"
