"""docs/results.md and the README's generated regions, from the run records under docs/runs/ and the figure
records under docs/figures/ (`bash scripts/make_results.sh`, which runs `python -m hyperfairseq.analysis results`).

Every table of the paper (paper-spec §4) is printed with the paper's numbers and ours beside them; then the
figures, handwriting synthesis, speed and the GPU check. One module a part of the page:

    records.py       a record and the fields every part reads from it
    paper_tables.py  the paper's tables, which record fills which row, the tables beside the paper's
    figures.py       Figures 4-7 and the record of how each was made
    synthesis.py     handwriting synthesis (issue 15)
    speed.py         layer and fairseq-train benchmarks against their baselines, the GPU check
    page.py          the page and the README assembled from them; `main`
"""

from hyperfairseq.analysis.results.page import main

__all__ = ["main"]
