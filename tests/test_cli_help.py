"""Every command is documented: help text with an Example block, -h and --help."""

from __future__ import annotations

import click
import pytest

from workmill.cli import COMMAND_MODULES, cli, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"workmill {' '.join((*prefix, name))} is listed but not found"
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
    missing = [name for name in COMMAND_MODULES if f"`{name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"


def test_cli__start_up_imports_no_command_module_or_heavy_library():
    """`workmill -h` and `--version` must stay fast: nothing is imported before it is needed."""
    import subprocess
    import sys

    code = (
        "import sys, workmill.cli; "
        "print(','.join(m for m in sys.modules if m.startswith(('workmill.cli._r', "
        "'workmill.cli._b', 'workmill.cli._m', 'workmill.cli._cache', 'httpx', 'rich', "
        "'jsonschema', 'pydantic', 'yaml'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli__every_listed_command_resolves():
    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        assert cli.get_command(ctx, name) is not None, name
