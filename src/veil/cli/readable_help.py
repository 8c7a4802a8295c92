"""Readable value names in `--help` and usage lines, as argparse writes them: a parameter's own metavar
(PATH..., DIR, DETECTOR=FILE) or else its name in capitals (`--port PORT`), nothing after a flag, and never
Typer's Python types (`<list[Path]>`, `<str>`, `<bool>`).

Typer makes the click parameters itself and has no setting for this, so the root group (`ReadableHelpGroup`)
gives every parameter of every command below it a metavar once, when the command tree is built, and turns
the commands and arguments into the subclasses here, which show that metavar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    # Typer's own (vendored) click, whose Context its methods take; it has no public name.
    from typer._click import Context

__all__ = ["ReadableHelpGroup"]


class _ReadableArgument(TyperArgument):
    def display_type_rich(self, ctx: Context) -> str | None:
        return None  # the name column shows the metavar already

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.metavar or ""
        return [name if self.required else f"[{name}]"]


def _readable_option(option: TyperOption) -> TyperOption:
    if option.metavar is None:
        # A flag takes no value: an empty metavar shows none where Typer would print <bool>.
        takes_value = not (option.is_flag or option.count)
        option.metavar = (option.name or "value").strip("_").upper() if takes_value else ""
    return option


def _make_readable(command: Any) -> None:
    for param in command.params:
        if isinstance(param, TyperOption):
            _readable_option(param)
        elif isinstance(param, TyperArgument):
            param.__class__ = _ReadableArgument
            if param.metavar is None:
                plural = "..." if param.nargs != 1 else ""
                param.metavar = (param.name or "value").strip("_").upper() + plural
    if isinstance(command, TyperGroup):
        command.__class__ = ReadableHelpGroup
        for subcommand in command.commands.values():
            _make_readable(subcommand)
    elif isinstance(command, TyperCommand):
        command.__class__ = _ReadableCommand


class _ReadableCommand(TyperCommand):
    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        return None if option is None else _readable_option(option)


class ReadableHelpGroup(TyperGroup):
    """The root group (`typer.Typer(cls=ReadableHelpGroup)`): every command below it shows readable value
    names in its help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _make_readable(self)

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        return None if option is None else _readable_option(option)
