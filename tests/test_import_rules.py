"""The one-way flow of the house (STYLE.md): sweeps -> study -> records on disk -> analysis.

study never imports ray or analysis; analysis never imports torch or ray; nothing outside
sweeps imports sweeps. Checked on the syntax tree, so imports inside functions count too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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
