"""The decoders are sans-I/O (STYLE §8.2 rule 1): no asyncio, sockets, threads or database drivers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshlogs.capture

PURE = ["lsn", "walproto", "pgoutput", "pgtypes", "txbuilder", "_frozen"]
FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "psycopg", "psycopg2", "time", "random", "select"}
PACKAGE = Path(meshlogs.capture.__file__).parent


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{module} imports {sorted(imported & FORBIDDEN)}"


@pytest.mark.parametrize("module", [*PURE, "source", "__init__"])
def test_every_public_name_is_exported_and_exists(module: str) -> None:
    imported = __import__(
        f"meshlogs.capture.{module}" if module != "__init__" else "meshlogs.capture", fromlist=["*"]
    )
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ lists missing {name}"
