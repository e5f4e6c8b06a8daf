"""fairseq models built on hyperfairseq.modules (registration happens on import)."""

from . import hyperlstm_lm  # noqa: F401
from . import hyperlstm_mt  # noqa: F401
from . import hyperlstm_handwriting  # noqa: F401
from . import hyperlstm_synthesis  # noqa: F401
