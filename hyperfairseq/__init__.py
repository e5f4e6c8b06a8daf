"""hyperfairseq: HyperNetworks (Ha, Dai & Le, ICLR 2017) as a fairseq plugin (`--user-dir hyperfairseq`).

Importing the package registers its models, tasks and criterions with fairseq.
"""

from . import criterions, models, tasks  # noqa: F401
