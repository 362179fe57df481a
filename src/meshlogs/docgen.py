"""Generated reference docs: the settings table (and, later, CLI help), checked by tests.

``python -m meshlogs.docgen`` rewrites the generated blocks in ``docs/reference/*.md``; the test suite
fails when a block is stale, so docs can't drift from the code (datasette's ``cog --check`` idea).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from meshlogs.config import Settings, default_data_dir

__all__ = ["render_settings_table", "update_file"]

BEGIN = "<!-- BEGIN GENERATED: {name} -->"
END = "<!-- END GENERATED: {name} -->"


def render_settings_table() -> str:
    """A Markdown table of every ``MESHLOGS_*`` setting with its default and meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var, default, help_text in Settings.documented():
        if default == default_data_dir():
            shown = "platform user data dir (`~/.local/share/meshlogs`)"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif default == "":
            shown = "(empty)"
        else:
            shown = f"`{default}`"
        escaped = help_text.replace("|", "\\|")
        lines.append(f"| `{var}` | {shown} | {escaped} |")
    return "\n".join(lines)


GENERATORS = {"settings": render_settings_table}


def update_file(path: Path, *, check: bool = False) -> bool:
    """Regenerate every block in ``path``; return True when it was already up to date."""
    text = path.read_text(encoding="utf-8")
    new = text
    for name, render in GENERATORS.items():
        pattern = re.compile(
            re.escape(BEGIN.format(name=name)) + r".*?" + re.escape(END.format(name=name)), re.S
        )
        block = f"{BEGIN.format(name=name)}\n{render()}\n{END.format(name=name)}"
        new = pattern.sub(lambda _m: block, new)  # noqa: B023 - used at once
    if new != text and not check:
        path.write_text(new, encoding="utf-8")
    return new == text


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = [str(p) for p in Path("docs/reference").glob("*.md") if not update_file(p, check=check)]
    if stale and check:
        sys.exit(f"stale generated docs: {', '.join(stale)}; run python -m meshlogs.docgen")
