"""Every markdown link in the project's pages to a repository path resolves: the file exists and, for a link
into a markdown page with `#anchor`, the page has a heading of that anchor (GitHub's rule: lower case, spaces
to '-', punctuation dropped). Links inside code (fenced blocks, `inline`) are not links and are not checked."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGE_GLOBS = ("*.md", "docs/**/*.md", "examples/**/*.md", "benchmarks/**/*.md", "scripts/**/*.md",
              "tests/**/*.md", "hyperfairseq/**/*.md")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def pages():
    found = {p for pattern in PAGE_GLOBS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(REPO).parts))


def links(text: str):
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return [m.group(1) for m in LINK.finditer(text)]


def anchors(page: Path):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_parser_finds_links_and_skips_code():
    text = "[a](x.md) ![b](fig/y.png \"t\") `[c](no.md)`\n```\n[d](no2.md)\n```\n[e](<z w.md>) [f](x.md#part)"
    assert links(text) == ["x.md", "fig/y.png", "x.md#part"]
    assert links("[`name.png`](figures/name.png)") == ["figures/name.png"]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    rel = str(page.relative_to(REPO))
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...: not a repository path
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        key = str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(resolved)
        if not resolved.exists():
            broken.append(f"{target} (no {key})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {key})")
    assert not broken, f"{rel}: broken links: " + "; ".join(broken)


def test_the_readme_links_every_task_page():
    readme = set(links((REPO / "README.md").read_text(encoding="utf-8")))
    for page in ("char-lm", "translation", "handwriting", "vision", "speed", "results", "develop", "robustness"):
        assert f"docs/{page}.md" in readme


def test_the_readme_test_command_is_the_one_ci_runs():
    command = "bash scripts/get_data.sh && .venv/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder"
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(command + " ") or line == command for line in readme)  # the line to copy
    assert command in [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
