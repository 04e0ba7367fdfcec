"""Run the ``inn`` command line in this process: a subprocess spends about 3 s importing torch,
and the command's error handling lives in :func:`inn.cli.main` either way."""

import contextlib
import io
import subprocess

from inn.cli import main


def run_inn(args: list[str]) -> subprocess.CompletedProcess:
    """``inn ARGS``: the exit code and what it printed to stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exit:  # as the interpreter does: a message goes to stderr, code 1
            code = exit.code if isinstance(exit.code, int) or exit.code is None else 1
            if not isinstance(exit.code, int) and exit.code is not None:
                print(exit.code, file=err)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
