"""fairseq criterions (registration happens on import)."""
