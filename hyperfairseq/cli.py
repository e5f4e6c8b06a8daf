"""What the plugin's own command lines (`python -m hyperfairseq.MODULE`) share: their parser, their errors
and their checkpoint loader.

`parser` names the program as it is typed and takes the description from the module's docstring;
`run_main` is the body of every `main`: bad input (errors.py) is one line `PROG: error: MESSAGE`, exit 2;
`load_model_and_task` reads a checkpoint through fairseq with the plugin's safe reader installed.
"""

import argparse
import os
import sys
from typing import Callable, Optional, Tuple, Type

from hyperfairseq.errors import InputError


def parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of `python -m hyperfairseq.<module>`, described by the first line of its docstring `doc`."""
    return argparse.ArgumentParser(prog=f"python -m hyperfairseq.{module}", description=doc.splitlines()[0])


def run_main(
    prog: str,
    work: Callable[[], object],
    errors: Tuple[Type[BaseException], ...] = (InputError, OSError),
    text_file: Optional[str] = None,
) -> int:
    """A CLI's `main` body: run `work`; exit status 0, or 2 after printing an error of `errors` as one line.

    A UnicodeDecodeError is always the user's file: it is named as `text_file` (or "input") not being UTF-8.
    """
    try:
        work()
    except UnicodeDecodeError as error:
        message = f"{text_file or 'input'}: not UTF-8 text ({error})"
    except errors as error:
        message = str(error)
    else:
        return 0
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def load_model_and_task(path: str, arg_overrides: Optional[dict] = None):
    """(model, cfg, task) from a fairseq checkpoint. Importing the package (hyperfairseq/__init__.py) made
    fairseq read it through `checkpoint_files.safe_load` and name a missing or damaged file (fairseq_patches 1)."""
    from fairseq import checkpoint_utils

    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=arg_overrides)
    except InputError as error:
        stored = None if (arg_overrides or {}).get("data") else _stored_data_folder(path)
        if stored is None or os.path.isdir(stored):
            raise
        raise InputError(f"{error}. The checkpoint names the data folder {stored!r} as it was given to fairseq-train"
                         f"{' (relative to where training ran)' if not os.path.isabs(stored) else ''}: point --data "
                         "at the folder that holds its dict.txt") from error
    return models[0], cfg, task


def _stored_data_folder(path: str) -> Optional[str]:
    """The first data folder of the checkpoint's task config (fairseq's `data` may list several, split by ':')."""
    from hyperfairseq.checkpoint_files import safe_load

    try:
        state = safe_load(path, path)
    except InputError:
        return None
    data = state
    for key in ("cfg", "task", "data"):  # a checkpoint's config as fairseq writes it (plain containers)
        data = data.get(key) if isinstance(data, dict) else None
    return data.split(os.pathsep)[0] if isinstance(data, str) and data else None
