"""fairseq criterions (registration happens on import)."""
from . import mdn  # noqa: F401
