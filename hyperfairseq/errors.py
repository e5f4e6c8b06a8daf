"""Bad input is named in one line, not a traceback (issue 12 §3).

`InputError` is what every reader, task and entry point of the plugin raises for a file, flag or
checkpoint it cannot use; its message names the file or flag and what was expected. It subclasses
ValueError, so API callers catch it as before.

Our own CLIs (`python -m hyperfairseq...`) run their work through `cli.run_main`, which prints an
InputError (and the other errors the CLI names, e.g. OSError) as `PROG: error: MESSAGE` on one line (exit 2).
fairseq's CLIs are not ours; when the plugin is loaded into them (`--user-dir`), `install_excepthook`
prints an uncaught InputError, or an exception raised while handling one (fairseq re-raises load errors
as "Cannot load model parameters ..."), as that one line (exit 1). Every other exception keeps its
traceback: those are bugs. `HYPERFAIRSEQ_TRACEBACK=1` shows the traceback for InputErrors too.
"""

import os
import sys
from typing import Optional


class InputError(ValueError):
    """A file, flag or checkpoint given by the user cannot be used; the message says which and why."""


def input_error_in(exc: Optional[BaseException]) -> Optional[InputError]:
    """The first InputError in `exc`'s chain (itself, then its __cause__ / __context__), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def one_line(error: InputError) -> str:
    return f"{program_name()}: error: {' '.join(str(error).split())}"


def _excepthook(kind, value, tb, _previous=sys.excepthook):
    error = input_error_in(value)
    if error is None or os.environ.get("HYPERFAIRSEQ_TRACEBACK"):
        return _previous(kind, value, tb)
    print(one_line(error), file=sys.stderr, flush=True)


def install_excepthook() -> None:
    """Print uncaught InputErrors as one line (idempotent)."""
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook
