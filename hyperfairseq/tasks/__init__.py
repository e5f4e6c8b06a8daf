"""fairseq tasks (registration happens on import)."""
