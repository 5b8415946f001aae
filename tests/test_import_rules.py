"""The one-way flow of the house (STYLE.md): sweeps -> study -> records on disk -> analysis.

study never imports ray or analysis; analysis never imports torch or ray; nothing outside
sweeps imports sweeps; the Koopman core (study.koopman) imports no other part of study; and
no module of the project takes part in an import circle. Checked on the syntax tree, so
imports inside functions count too.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROJECT_PACKAGES = ("study", "sweeps", "analysis")
FORBIDDEN = {
    "study": {"ray", "analysis", "sweeps"},
    "analysis": {"torch", "ray", "sweeps"},
}


def imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package):
    offenders = []
    for path in python_files(package):
        banned = imported_top_level_names(path) & FORBIDDEN[package]
        if banned:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(banned)}")
    assert not offenders, "\n".join(offenders)


def test_nothing_imports_sweeps():
    offenders = []
    for package in ("study", "analysis"):
        for path in python_files(package):
            if "sweeps" in imported_top_level_names(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_rule_checker_sees_nested_imports(tmp_path):
    # The checker itself must catch an import hidden inside a function body.
    module = tmp_path / "module.py"
    module.write_text("def f():\n    import torch.nn\n    from ray import tune\n")
    assert imported_top_level_names(module) == {"torch", "ray"}


def module_name(path: Path, root: Path) -> str:
    """``study/koopman/dmd.py`` -> ``study.koopman.dmd``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports, anywhere in its syntax tree.

    ``from package import name`` counts as an import of ``package.name`` when that is a module,
    else of ``package``. Relative imports are resolved against the importing module. The
    parent packages Python initialises along the way are not counted: a package that
    re-exports its submodules would otherwise form a circle with each of them.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a module a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, packages) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every ``.py`` file under ``packages``."""
    paths = {module_name(path, root): path
             for package in packages for path in sorted((root / package).rglob("*.py"))}
    return {name: project_imports(path, root, set(paths)) for name, path in paths.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle: the strongly connected components with more than one module
    (Tarjan's algorithm), each sorted; a module importing itself is not counted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node), on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_in_the_project():
    graph = import_graph(ROOT, PROJECT_PACKAGES)
    assert "study.koopman.dmd" in graph and graph["study.koopman.dmd"]  # the walk saw imports
    cycles = import_cycles(graph)
    assert not cycles, "import circles (move the shared pieces into a leaf module): " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles)


def test_cycle_checker_catches_a_planted_cycle(tmp_path):
    # a -> b at module level, b -> c inside a function, c -> a through a relative import:
    # one circle of three; d imports a (outside the circle) and the package re-exports a.
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text("from planted.a import thing\n")
    (package / "a.py").write_text("import planted.b\nthing = 1\n")
    (package / "b.py").write_text("def late():\n    from planted import c\n")
    (package / "c.py").write_text("from .a import thing\n")
    (package / "d.py").write_text("from planted.a import thing\n")
    graph = import_graph(tmp_path, ["planted"])
    assert graph["planted.b"] == {"planted.c"} and graph["planted.c"] == {"planted.a"}
    assert import_cycles(graph) == [["planted.a", "planted.b", "planted.c"]]
    (package / "b.py").write_text("X = 0\n")  # break the circle
    assert import_cycles(import_graph(tmp_path, ["planted"])) == []


def test_koopman_core_imports_nothing_else_from_study():
    graph = import_graph(ROOT, PROJECT_PACKAGES)
    offenders = {name: sorted(target for target in targets
                              if not target.startswith("study.koopman"))
                 for name, targets in graph.items() if name.startswith("study.koopman")}
    assert not any(offenders.values()), offenders


def test_importing_the_koopman_core_or_analysis_loads_no_torch():
    # study/__init__ and study.records are reached from analysis; study.koopman must stand on
    # its own without a deep-learning stack. Checked in a fresh interpreter.
    modules = ["study.koopman"] + sorted(import_graph(ROOT, ["analysis"]))
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'torch' not in sys.modules, name\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_study_points_at_nothing_outside_the_repository():
    # The repository stands on its own: cite the paper by name, say a reason in words.
    pattern = re.compile(r"\.\./|\bshared/|PAPER\.md|STYLE\.md|\bhabit \d|\bissue \d", re.I)
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in python_files("study")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders, "\n".join(offenders)
