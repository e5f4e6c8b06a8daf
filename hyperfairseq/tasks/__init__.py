"""fairseq tasks (registration happens on import)."""

from . import char_lm  # noqa: F401
from . import handwriting  # noqa: F401
from . import handwriting_synthesis  # noqa: F401
