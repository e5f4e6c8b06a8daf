"""The warnings a user of hyperfairseq cannot act on, hidden by category and the start of their message.

Each comes from the libraries beneath us, on every run, and says nothing about the user's command or
data: fairseq 0.12 decorates functions with `torch.jit.script` (deprecated in torch 2.x), calls hydra's
1.0-era compose API and the old `torch.cuda.amp.autocast`, and asks torch's DataLoader to pin memory on
machines without an accelerator. Every other warning is shown as Python shows it.

The package `__init__` imports this module first, so `python -m hyperfairseq.*` installs the filters
before fairseq is imported. fairseq's own CLIs import fairseq, and warn about `torch.jit.script` once,
before they load `--user-dir hyperfairseq`: for those, the filters apply from the plugin's loading on, and
the scripts hide that first warning with the same filter in the environment (`PYTHONWARNINGS`).

The same holds for one log level: fairseq 0.12's `models/wav2vec/wav2vec2_classification.py` calls
`logging.basicConfig(level=logging.DEBUG)` when it is imported, so in a program that had not configured
logging (every `python -m hyperfairseq.*` tool) every library's debug messages printed (matplotlib's on
each figure). `undo_fairseq_debug_level` puts the root logger back at INFO, the level fairseq's other
modules and its CLIs set (those configure logging before importing fairseq, so there the call is a no-op).
"""

import logging
import sys
import warnings

IGNORED = (
    (FutureWarning, r"`torch\.jit\.script` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated"),
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In 'config': Usage of deprecated keyword in package header '# @package _group_'"),
    (UserWarning, r"\s*'config' is validated against ConfigStore schema with the same name"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
)

for category, message in IGNORED:
    warnings.filterwarnings("ignore", message=message, category=category)

# the root logger's level before fairseq was imported (None: fairseq came first, nothing of ours to undo)
ROOT_LEVEL_BEFORE_FAIRSEQ = None if "fairseq" in sys.modules else logging.getLogger().level


def undo_fairseq_debug_level() -> None:
    """Called once fairseq is imported: the root logger back at INFO where fairseq's import set it to DEBUG."""
    root = logging.getLogger()
    if ROOT_LEVEL_BEFORE_FAIRSEQ not in (None, logging.DEBUG) and root.level == logging.DEBUG:
        root.setLevel(logging.INFO)
