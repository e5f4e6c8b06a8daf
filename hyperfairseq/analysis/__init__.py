"""`python -m hyperfairseq.analysis`: the paper's analyses of trained checkpoints (Figures 4-7) and
the generated results page (docs/results.md). See `__main__.py` for the subcommands."""
