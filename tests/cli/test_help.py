"""`--help` of every command names values readably (PATH..., DIR, PORT), never with Python types."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from veil.cli.app import app

runner = CliRunner()


def _command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, TyperGroup):
        for name, subcommand in command.commands.items():
            yield from _command_paths(subcommand, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))
# Typer's own value names: <list[Path]>, <str>, <int range>, <bool>, list[str], {inputs}...
PYTHON_TYPES = re.compile(
    r"<(?:str|int|float|bool|path|list|tuple|datetime|uuid)\b[^>]*>|list\[|\[Path\]|\{\w+"
)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "veil")
def test_help_shows_readable_value_names(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})

    assert result.exit_code == 0, result.output
    assert not PYTHON_TYPES.findall(result.output), result.output


@pytest.mark.parametrize(
    ("command", "lines"),
    [
        (
            ("blur",),
            ["blur [OPTIONS] PATH...", "--output", "DIR", "--model", "DETECTOR=FILE", "--jobs"],
        ),
        (("task", "submit"), ["task submit [OPTIONS] FILE|DIR...", "--interval", "SECONDS"]),
        (("serve",), ["--port", "PORT", "--workers", "N"]),
    ],
)
def test_help_names_what_each_value_is(command: tuple[str, ...], lines: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})

    for text in lines:
        assert text in result.output, result.output
