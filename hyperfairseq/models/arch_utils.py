"""Helpers shared by the architecture tables of the hyperfairseq models."""

from fairseq.utils import safe_getattr


def set_defaults(cfg, **defaults) -> None:
    """Set each field the command line (or an earlier architecture function) left unset.

    Architecture functions call it with what their table row changes, then with the base defaults,
    so each row reads as a diff from the base (fairseq's `safe_getattr` idiom).
    """
    for key, value in defaults.items():
        setattr(cfg, key, safe_getattr(cfg, key, value))
