"""fairseq models built on hyperfairseq.modules (registration happens on import)."""

from . import hyperlstm_handwriting, hyperlstm_lm, hyperlstm_mt, hyperlstm_synthesis  # noqa: F401
