"""Write the IAM-OnDB transcript fixtures in ascii/ (schema of docs/iam-ondb-format.md §1.4). Re-run to rebuild.

    python tests/data/iam_ascii/make_fixtures.py

Each file is byte-exact in the measured layout: "OCR:" line, empty line, OCR lines, empty line, "CSR:",
exactly one empty line, one CSR line per line file. The texts are invented; see tests/data/README.md.
"""

import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ascii")


def transcript(csr, ocr=(), eol="\r\n", mark_space="", final="\r\n"):
    """OCR/CSR layout; `final` is what follows the last CSR line ("" = no final newline)."""
    head = [f"OCR:{mark_space}", "", *ocr] + ([""] if ocr else []) + [f"CSR:{mark_space}", ""]
    return (eol.join(head + list(csr)[:-1] + [""]) + list(csr)[-1] + final).encode("latin-1")


FILES = {
    # CRLF throughout, a printed-prompt OCR block, trailing blanks on CSR lines (1,684 measured)
    "a01/a01-000/a01-000u.txt": transcript(
        ["A MOVE to stop Mr . Gaitskell  ", "from nominating any more Labour ", "life Peers is to be made"],
        ocr=["A MOVE to stop Mr. Gaitskell from", "nominating any more Labour life Peers"]),
    # LF line ends (323 files), "OCR: " / "CSR: " with a trailing space (123), no final newline (3)
    "a01/a01-001/a01-001.txt": transcript(
        ["by Sir Roy Welensky ,", "the Federal Premier .", "Mr . Macleod went on"], eol="\n", mark_space=" ",
        final=""),
    # an extra empty line at the end (5 files)
    "a01/a01-053/a01-053.txt": transcript(["Though they may gather"], final="\r\n\r\n"),
    # 2 CSR lines for its 1 line file: counted and skipped
    "a01/a01-053/a01-053x.txt": transcript(["some compromise", "on this matter"]),
    # two CSR lines joined by %%%%%%%%%%% (a08-551z): split back into two for the two line files
    "a02/a02-000/a02-000.txt": transcript(["it is a step %%%%%%%%%%% towards the end"]),
    # a form in no split list
    "a01/a01-099/a01-099z.txt": transcript(["not in any split list"]),
    # z01-000z's placeholder (8 line files in the real data; none here: a transcript without ink)
    "z01/z01-000/z01-000z.txt": transcript(["Please Enter Transcription here"]),
    # malformed: no CSR: line / no empty line after CSR: / an empty line inside the block / not ASCII
    "y01/y01-000/y01-000.txt": b"OCR:\r\n\r\nonly an OCR block\r\n",
    "y01/y01-001/y01-001.txt": b"OCR:\r\n\r\nCSR:\r\nno empty line after the mark\r\n",
    "y01/y01-002/y01-002.txt": transcript(["first line", "", "third line"]),
    "y01/y01-003/y01-003.txt": transcript(["caf\xe9 au lait"]),
}


def main():
    for rel, data in FILES.items():
        path = os.path.join(HERE, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    print(f"wrote {len(FILES)} transcripts under {HERE}")


if __name__ == "__main__":
    main()
