"""fairseq tasks (registration happens on import)."""
from . import handwriting  # noqa: F401
