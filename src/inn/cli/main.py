"""The ``inn`` command line: global options, the commands of this library and of installed
plugins (entry-point group ``inn.commands``), and one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import Any, NoReturn

__all__ = ["main"]

PLUGIN_GROUP = "inn.commands"
"""Entry points of this group are ``register(subparsers)`` callables that add commands."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line (exit code 2), with the way to the full usage; options only
    by their full names; subcommands inherit it (``add_subparsers`` builds parsers of the
    parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --budgets must not mean --budgets-reconstruction
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Every default shown one way, ``(default: X)``: added where a help text does not state
    it itself (a default computed at run time is written out in the help, in the same form)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def _global_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    """The options every command takes, before or after its name (``inn prune ... --quiet``)."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log progress details"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of an error"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress bars"
    )


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub)command parser below ``parser``, depth first."""
    found = []
    for action in parser._actions:  # argparse keeps its subcommands there, public or not
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                found += [child, *_commands(child)]
    return found


def main(argv: list[str] | None = None) -> int:
    """Run ``inn ARGV`` (default: the process's arguments); returns the exit code: 0, 1 for an
    error while running, 2 for a mistake in the arguments."""
    parser = _Parser(
        prog="inn",
        description="Integral Neural Networks",
        formatter_class=_Help,
    )
    _global_options(parser, default=False)
    from inn import __version__

    parser.add_argument("--version", action="version", version=f"inn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from inn.cli import inspect, prune, train

    for command in (prune, inspect, train):
        command.add_parser(sub)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(sub)
    for command_parser in _commands(parser):  # plugins' commands and their subcommands too
        command_parser.formatter_class = _Help
        _global_options(command_parser, default=argparse.SUPPRESS)  # given here: overrides

    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from inn.cli.models import UsageError
    from inn.errors import InnError, first_line

    try:
        with contextlib.ExitStack() as stack:
            if args.quiet:  # progress bars and warnings go to stderr; errors are printed after
                stack.enter_context(contextlib.redirect_stderr(stack.enter_context(
                    open(os.devnull, "w")
                )))  # fmt: skip
            return args.func(args)
    except InnError as err:
        if args.debug:
            raise
        print(f"inn {args.command}: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    except Exception as err:  # anything else: one line, the traceback only on request
        if args.debug:
            raise
        print(
            f"inn {args.command}: error: {type(err).__name__}: {first_line(err)} (--debug shows "
            "where)",
            file=sys.stderr,
        )
        return 1
