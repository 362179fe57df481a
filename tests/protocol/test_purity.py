"""The protocol core stays sans-I/O, and every module declares what it exports (STYLE.md §8)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import meshlogs.protocol

PACKAGE = Path(meshlogs.protocol.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
FORBIDDEN = {"asyncio", "socket", "psycopg", "psycopg2", "psycopg_pool", "aiohttp", "time"}
# Anything else from meshlogs would bring its own imports along; only these are pure.
ALLOWED_MESHLOGS = {"meshlogs.errors"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _module_name(path: Path) -> str:
    return "meshlogs.protocol" if path.stem == "__init__" else f"meshlogs.protocol.{path.stem}"


def test_modules_found() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_no_io_imports(path: Path) -> None:
    for name in _imports(path):
        root = name.split(".")[0]
        assert root not in FORBIDDEN, f"{path.name} imports {name}"
        if root == "meshlogs":
            assert name.startswith("meshlogs.protocol") or name in ALLOWED_MESHLOGS, (
                f"{path.name} imports {name}, which is outside the pure core"
            )


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_exports_and_future_annotations(path: Path) -> None:
    source = path.read_text()
    assert "from __future__ import annotations" in source
    module = importlib.import_module(_module_name(path))
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{path.name} has no __all__"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{path.name} exports missing {name}"
