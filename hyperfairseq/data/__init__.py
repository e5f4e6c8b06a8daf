"""Dataset readers and converters that fairseq does not have."""
