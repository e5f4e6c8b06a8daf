"""fairseq models built on hyperfairseq.modules (registration happens on import)."""

from . import hyperlstm_handwriting, hyperlstm_lm, hyperlstm_mt  # noqa: F401
