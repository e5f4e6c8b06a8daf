"""hyperfairseq: HyperNetworks (Ha, Dai & Le, ICLR 2017) as a fairseq plugin (`--user-dir hyperfairseq`).

Importing the package registers its models, tasks and criterions with fairseq, after hiding the warnings
a user cannot act on (`warning_filters`, first, so that they are hidden while fairseq is imported), undoes
the debug log level fairseq's import sets, and applies the few documented changes to fairseq's
checkpointing and error reporting in `fairseq_patches` (issue 12).
"""

from . import warning_filters  # noqa: F401, I001  (before anything that imports fairseq)
from . import criterions, fairseq_patches, models, tasks  # noqa: F401

warning_filters.undo_fairseq_debug_level()
fairseq_patches.install()
