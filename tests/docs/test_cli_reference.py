"""docs/reference/cli.md is the CLI's real ``--help`` output, for every command, and is kept fresh."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from meshlogs.cli import main
from meshlogs.docgen import HELP_COLUMNS, cli_command_paths, command_help, render_file, update_file

ROOT = Path(__file__).resolve().parents[2]
CLI_MD = ROOT / "docs" / "reference" / "cli.md"
REGENERATE = "regenerate it with scripts/gen-docs (python -m meshlogs.docgen) and commit the result"

PATHS = cli_command_paths()


def _ids(path: tuple[str, ...]) -> str:
    return " ".join(("meshlogs", *path))


def test_cli_reference_is_fresh() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    fresh = render_file(text)
    if fresh != text:
        diff = "".join(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                "docs/reference/cli.md (committed)",
                "docs/reference/cli.md (from src/meshlogs/cli.py)",
            )
        )
        pytest.fail(f"docs/reference/cli.md is stale; {REGENERATE}:\n{diff}", pytrace=False)


def test_every_command_has_a_section() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    headings = re.findall(r"^## `(meshlogs[^`]*)`$", text, re.M)
    assert headings == [_ids(p) for p in PATHS], f"the commands in cli.md differ from the CLI; {REGENERATE}"
    assert ("serve",) in PATHS and ("users", "add") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_help_matches_reference(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the console script prints for ``--help`` is, verbatim, in the reference."""
    expected = command_help(path)
    if expected is None:  # `meshlogs bench` hands --help to the benchmark (bench/, not the package)
        return
    monkeypatch.setenv("COLUMNS", str(HELP_COLUMNS))
    try:
        main([*path, "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    printed = capsys.readouterr().out.rstrip("\n")
    assert printed == expected
    doc = CLI_MD.read_text(encoding="utf-8")
    assert f"## `{_ids(path)}`\n\n```text\n{printed}\n```" in doc, (
        f"`{_ids(path)} --help` differs from docs/reference/cli.md; {REGENERATE}"
    )


def test_a_stale_reference_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    fresh = render_file(CLI_MD.read_text(encoding="utf-8"))
    edited = fresh.replace("Show this message and exit.", "Show this message.", 1)
    assert edited != fresh
    stale.write_text(edited, encoding="utf-8")
    assert not update_file(stale, check=True)
    assert stale.read_text(encoding="utf-8") == edited, "--check must not write"
    assert not update_file(stale)
    assert stale.read_text(encoding="utf-8") == fresh
    assert update_file(stale, check=True)
