"""Every command is documented: help text with an Example block, -h and --help."""

from __future__ import annotations

import click
import pytest

from workmill.cli import cli, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(cli))


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command__has_help_with_example(path, cmd, capsys):
    assert cmd.help and "Example:" in cmd.help, f"workmill {' '.join(path)} lacks an Example"
    assert main([*path, "-h"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_readme__names_every_top_level_command():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in cli.commands if f"`{name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"
