"""docs/robustness.md is generated from the suite (report.py): it must list exactly the suite's cases,
and the run it reports must have ended every case as expected (0 tracebacks, silent wrong results,
data loss, half-written outputs, unclear errors, crafted payloads run)."""

import importlib
import re
from pathlib import Path

from .harness import REPO

# every case file of the suite (a module with CASES), found rather than listed: a new file cannot be left out
_FILES = sorted(path.stem for path in Path(__file__).parent.glob("test_*.py") if path.stem != "test_report")
MODULES = [module for module in (importlib.import_module(f"{__package__}.{stem}") for stem in _FILES)
           if hasattr(module, "CASES")]


def test_the_page_lists_every_case_of_the_suite_and_no_other():
    page = (REPO / "docs" / "robustness.md").read_text()
    listed = re.findall(r"^\| `([^`]+)` \|", page, flags=re.M)
    suite = [case.id for module in MODULES for case in module.CASES]
    assert len(suite) == len(set(suite)) >= 120
    assert sorted(listed) == sorted(suite), "run tests/robustness/report.py to regenerate docs/robustness.md"


def test_the_page_describes_each_case_as_the_suite_does():
    """A case whose input or expectation was edited since the page was made makes the page stale too."""
    rows = {line.split(" | ", 1)[0][3:-1]: line for line in (REPO / "docs" / "robustness.md").read_text().splitlines()
            if line.startswith("| `")}
    for case in (case for module in MODULES for case in module.CASES):
        expected = "error" if case.expect == "error" else "success"
        row = f"| `{case.id}` | {case.input.replace('|', chr(92) + '|')} | {expected} |"
        assert rows.get(case.id, "").startswith(row), f"{case.id}: run tests/robustness/report.py to regenerate"


def test_the_reported_run_ended_every_case_as_expected():
    page = (REPO / "docs" / "robustness.md").read_text()
    counts = dict(re.findall(r"^\| ([a-z -]+) \| (\d+) \|", page.split("## By area")[0], flags=re.M))
    for bad in ("unclear error", "traceback", "silent wrong result", "data loss", "half-written output",
                "code executed"):
        assert counts[bad] == "0", bad
    assert int(counts["correct"]) + int(counts["clean error"]) == int(counts["cases"])
