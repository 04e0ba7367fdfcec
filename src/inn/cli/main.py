"""The ``inn`` command line: global options, the commands of this library and of installed
plugins (entry-point group ``inn.commands``), and one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import NoReturn

__all__ = ["main"]

PLUGIN_GROUP = "inn.commands"
"""Entry points of this group are ``register(subparsers)`` callables that add commands."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line (exit code 2), with the way to the full usage; subcommands
    inherit it (``add_subparsers`` builds parsers of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Run ``inn ARGV`` (default: the process's arguments); returns the exit code."""
    parser = _Parser(prog="inn", description="Integral Neural Networks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    from inn import __version__

    parser.add_argument("--version", action="version", version=f"inn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from inn.cli import inspect, prune, train

    for command in (prune, inspect, train):
        command.add_parser(sub)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(sub)

    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from inn.errors import InnError

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
        return 2
    except Exception as err:  # anything else: one line, the traceback only on request
        if args.debug:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(
            f"inn {args.command}: error: {type(err).__name__}: {first} (--debug shows where)",
            file=sys.stderr,
        )
        return 1
