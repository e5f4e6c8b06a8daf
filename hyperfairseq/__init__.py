"""hyperfairseq: HyperNetworks (Ha, Dai & Le, ICLR 2017) as a fairseq plugin (`--user-dir hyperfairseq`).

Importing the package registers its models, tasks and criterions with fairseq, after hiding the warnings
a user cannot act on (`warning_filters`, first, so that they are hidden while fairseq is imported).
"""

from . import warning_filters  # noqa: F401, I001  (before anything that imports fairseq)
from . import criterions, models, tasks  # noqa: F401
