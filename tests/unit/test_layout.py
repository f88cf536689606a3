"""The shared kernel stays a kernel: it imports nothing that is built on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KERNEL = Path(__file__).resolve().parents[2] / "overdracht"
BUILT_ON_IT = ("services", "gateway", "ops")


def imported_modules(source: str) -> set[str]:
    """Every module a source imports, at top level or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted(KERNEL.glob("*.py")), ids=lambda p: p.name)
def test_kernel_imports_nothing_built_on_it(path):
    offending = {m for m in imported_modules(path.read_text()) if m.split(".")[0] in BUILT_ON_IT}
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_the_check_sees_imports_inside_functions():
    source = "def f():\n    from services.auth.accounts import register\n    import ops.cli\n"
    assert imported_modules(source) == {"services.auth.accounts", "ops.cli"}
