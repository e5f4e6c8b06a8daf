"""Reading checkpoint files safely, with a message that names the file (issue 12 §3, §4).

Every checkpoint the plugin reads goes through `safe_load`: `torch.load(weights_only=True)`, explicitly
(argparse.Namespace allowed, see SAFE_GLOBALS), so a crafted pickle is refused without running anything,
whatever torch's default or `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` say. fairseq's own loader is routed here
too when the plugin is loaded (`hyperfairseq.fairseq_patches`). A missing, empty, truncated or foreign
file raises `CheckpointError` naming the file and what it holds instead.

`is_intact` is the cheap test used to choose a checkpoint to resume from: torch writes checkpoints
as zip archives, and a file cut short by a kill lacks the archive's central directory (at its end);
`testzip` also checks every member's CRC.
"""

import argparse
import os
import pickle
import re
import zipfile
from typing import Any, BinaryIO, Optional, Union

import torch

from hyperfairseq.errors import InputError

VISION_FORMAT = "hyperfairseq-vision-v1"  # examples/hyper_resnet/train.py's checkpoints
#: fairseq's legacy components (e.g. `--optimizer sgd`) store their options as an argparse.Namespace:
#: a plain attribute container, rebuilt without calling any code of the file's choosing
SAFE_GLOBALS = [argparse.Namespace]


class CheckpointError(InputError):
    """A checkpoint file is missing, unreadable, unsafe or not of the kind expected."""


def is_intact(path: str) -> bool:
    """True when `path` is a complete zip-format torch file (every member's CRC checks)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = b"\x80"  # torch.save's legacy (non-zip) format: a pickle of protocol 2 or later


def _head(source: Union[str, BinaryIO], size: int = 8) -> Optional[bytes]:
    """The first bytes of a path or of a seekable file (its position kept); None where they cannot be read."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as f:
                return f.read(size)
        if not source.seekable():  # a stream: its bytes are for torch.load
            return None
        at = source.tell()
        head = source.read(size)
        source.seek(at)
        return head
    except (OSError, AttributeError, ValueError):
        return None


def check_file(path: str) -> None:
    """Raise CheckpointError unless `path` is a non-empty file."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")


def safe_load(source: Union[str, BinaryIO], name: str, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)` of `source`; failures become CheckpointError naming `name`."""
    head = _head(source)
    if isinstance(source, str) and head is not None and head.startswith(ZIP_MAGIC) and not is_intact(source):
        raise CheckpointError(f"{name}: truncated or damaged (an incomplete zip archive: killed while it was "
                              "written, or the disk was full?)")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for damaged files: name the file, say which
        text = " ".join(str(err).split())
        refused = isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in text
        culprit = re.search(r"GLOBAL ([\w.]+)", text) if refused else None
        if culprit:
            raise CheckpointError(f"{name}: refused: it asks to call {culprit.group(1)}, which a plain-weights "
                                  "checkpoint never does; nothing in it was executed") from None
        if head is not None and not head.startswith((ZIP_MAGIC, PICKLE_PROTO)):  # a text, JSON or image file
            raise CheckpointError(f"{name}: not a readable checkpoint: neither a zip archive nor a pickle, as "
                                  f"torch.save writes (it begins {head!r}); nothing in it was executed") from None
        if refused:
            raise CheckpointError(f"{name}: refused: it asks to call a Python object, which a plain-weights "
                                  "checkpoint never does; nothing in it was executed") from None
        raise CheckpointError(
            f"{name}: not a readable checkpoint (truncated or damaged? {type(err).__name__}: {text[:160]})") from None


def describe(state: Any) -> str:
    """What a loaded object that is not a fairseq checkpoint looks like, for a message."""
    if isinstance(state, dict) and state.get("format") == VISION_FORMAT:
        return (f"a vision checkpoint of examples/hyper_resnet/train.py ({state.get('arch')!r}); "
                "evaluate it with train.py --eval --resume")
    if isinstance(state, dict):
        return f"a dict with keys {sorted(map(str, state))[:6]}"
    if isinstance(state, torch.Tensor):
        return f"a bare tensor of shape {tuple(state.shape)}"
    return f"a {type(state).__name__}"


def require_fairseq_state(state: Any, name: str) -> dict:
    """`state` if it is a fairseq training checkpoint (a dict with "model" and "cfg" or "args")."""
    if isinstance(state, dict) and "model" in state and (state.get("cfg") is not None or state.get("args") is not None):
        return state
    raise CheckpointError(f"{name}: not a fairseq checkpoint: it holds {describe(state)}")


def read_checkpoint(path: str) -> dict:
    """A fairseq checkpoint file as a dict, read safely; CheckpointError naming `path` otherwise."""
    check_file(path)
    return require_fairseq_state(safe_load(path, path), path)
