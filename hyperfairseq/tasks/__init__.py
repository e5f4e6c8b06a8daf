"""fairseq tasks (registration happens on import)."""

from . import (
    char_lm,  # noqa: F401
    handwriting,  # noqa: F401
    handwriting_synthesis,  # noqa: F401
)
