"""Generated reference docs: the settings table and the CLI's ``--help`` texts, checked by tests.

``python -m meshlogs.docgen`` (or ``scripts/gen-docs``) rewrites the generated blocks in
``docs/reference/*.md``; ``--check`` only reports stale files. The test suite fails when a block is
stale, so docs can't drift from the code (datasette's ``cog --check`` idea). A block is the text
between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``; everything outside
the markers is written by hand.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from meshlogs.config import Settings, default_data_dir

__all__ = [
    "HELP_COLUMNS",
    "cli_command_paths",
    "command_help",
    "render_cli_reference",
    "render_file",
    "render_settings_table",
    "update_file",
]

BEGIN = "<!-- BEGIN GENERATED: {name} -->"
END = "<!-- END GENERATED: {name} -->"

#: Terminal width the CLI reference is rendered at: ``COLUMNS=80 meshlogs ... --help`` prints the same.
HELP_COLUMNS = 80


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


def _root() -> click.Group:
    from meshlogs.cli import cli  # imported on use: the CLI pulls in the server, demo and tail

    return cli


def _walk(command: click.Command, ctx: click.Context, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(sub, click.Context(sub, info_name=name, parent=ctx), (*path, name))


def cli_command_paths() -> list[tuple[str, ...]]:
    """Every visible command of ``meshlogs`` as an argument path: ``()``, ``("bench",)``, ...

    Depth first, in the order ``--help`` lists them (alphabetical); subcommands follow their group,
    e.g. ``("users",)`` then ``("users", "add")``.
    """
    root = _root()
    return list(_walk(root, click.Context(root, info_name="meshlogs"), ()))


def _command(path: tuple[str, ...]) -> tuple[click.Command, click.Context]:
    command: click.Command = _root()
    ctx = click.Context(command, info_name="meshlogs")
    for name in path:
        assert isinstance(command, click.Group), path
        sub = command.get_command(ctx, name)
        if sub is None:
            raise LookupError(f"no command meshlogs {' '.join(path)}")
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    return command, ctx


def command_help(path: tuple[str, ...]) -> str | None:
    """What ``COLUMNS=80 meshlogs PATH --help`` prints, or None for a command that passes ``--help`` on.

    Rendered by click itself (``CliRunner``), so the reference is the real help text, not a copy.

    Raises:
        RuntimeError: ``--help`` did not exit 0.
    """
    command, _ctx = _command(path)
    if not command.add_help_option:
        return None
    # CliRunner forces an 80-column width of its own; a real terminal of COLUMNS columns gets
    # COLUMNS - 2 (click's HelpFormatter), so pass that width explicitly to print what users see.
    result = CliRunner().invoke(
        _root(), [*path, "--help"], prog_name="meshlogs", terminal_width=HELP_COLUMNS - 2
    )
    if result.exit_code != 0:
        raise RuntimeError(f"meshlogs {' '.join(path)} --help exited {result.exit_code}: {result.output}")
    return result.stdout.rstrip("\n")


def render_cli_reference() -> str:
    """One section per command: a heading and its ``--help`` text in a fenced block."""
    sections: list[str] = []
    for path in cli_command_paths():
        name = " ".join(("meshlogs", *path))
        text = command_help(path)
        if text is None:
            command, ctx = _command(path)
            summary = command.get_short_help_str(limit=200)
            text = command.get_usage(ctx)
            body = (
                f"{summary}\n\nThis command has no help of its own: it passes every argument, `--help` "
                f"included, to the program it runs.\n\n```text\n{text}\n```"
            )
        else:
            body = f"```text\n{text}\n```"
        sections.append(f"## `{name}`\n\n{body}")
    return "\n\n".join(sections)


GENERATORS: dict[str, Callable[[], str]] = {"settings": render_settings_table, "cli": render_cli_reference}


def render_file(text: str) -> str:
    """``text`` with every generated block it contains rendered afresh (blocks it lacks are not rendered)."""
    new = text
    for name, render in GENERATORS.items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if begin not in new:
            continue
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        block = f"{begin}\n{render()}\n{end}"
        new = pattern.sub(lambda _m: block, new)  # noqa: B023 - used at once
    return new


def update_file(path: Path, *, check: bool = False) -> bool:
    """Regenerate every block in ``path``; return True when it was already up to date."""
    text = path.read_text(encoding="utf-8")
    new = render_file(text)
    if new != text and not check:
        path.write_text(new, encoding="utf-8")
    return new == text


def main(argv: list[str]) -> int:
    """``python -m meshlogs.docgen [--check] [FILE...]``: regenerate (or check) the reference docs.

    Without files, every ``docs/reference/*.md`` under the current directory. Returns 1 when
    ``--check`` finds a stale file, else 0.
    """
    check = "--check" in argv
    files = [Path(a) for a in argv if a != "--check"] or sorted(Path("docs/reference").glob("*.md"))
    stale = [str(p) for p in files if not update_file(p, check=check)]
    if stale and check:
        print(f"stale generated docs: {', '.join(stale)}; run scripts/gen-docs", file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
