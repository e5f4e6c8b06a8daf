"""Plain text to the symbols of a character or byte dictionary and back, as fairseq `--bpe` encoders.

fairseq's Python API (`HyperLSTMLanguageModel.from_pretrained(...)`: `.score`, `.sample`, `.generate`) and
`fairseq-interactive` split a line of text on whitespace into dictionary symbols, after the `--bpe` encoder
has rewritten it. For the char_lm dictionaries that rewrite is the data's own preparation:

* `--bpe char_corpus`: the one rule of `hyperfairseq.data.char_corpus` (every character one symbol, `_`
  for a space; `the company` <-> `t h e _ c o m p a n y`);
* `--bpe byte_corpus`: every UTF-8 byte one `0x41`-style symbol (`hyperfairseq.data.byte_corpus`).

`--task char_lm` picks the one that fits its dictionary when no `--bpe` is given (`for_dictionary`).
Characters the dictionary lacks become <unk>, as everywhere in fairseq; `python -m hyperfairseq.sample`
refuses them by name instead.
"""

from typing import Optional, Union

from fairseq.data import Dictionary
from fairseq.data.encoders import register_bpe

from .byte_corpus import SYMBOL, byte_symbol, is_byte_dictionary
from .char_corpus import SPACE, to_char_line


@register_bpe("char_corpus")
class CharCorpusText:
    """Text <-> PTB-style character symbols (`_` for a space)."""

    def __init__(self, cfg=None):
        pass

    def encode(self, x: str) -> str:
        return to_char_line(x)

    def decode(self, x: str) -> str:
        return "".join(" " if s == SPACE else s for s in x.split(" ") if s)

    def is_beginning_of_word(self, x: str) -> bool:
        return x == SPACE


@register_bpe("byte_corpus")
class ByteCorpusText:
    """Text <-> one symbol per UTF-8 byte (`0x41`); symbols that are not bytes (<unk>) are left out."""

    def __init__(self, cfg=None):
        pass

    def encode(self, x: str) -> str:
        return " ".join(byte_symbol(b) for b in x.encode("utf-8"))

    def decode(self, x: str) -> str:
        data = bytes(int(s[2:], 16) for s in x.split() if SYMBOL.fullmatch(s))
        return data.decode("utf-8", errors="replace")

    def is_beginning_of_word(self, x: str) -> bool:
        return x == byte_symbol(ord(" "))


def for_dictionary(dictionary: Dictionary) -> Optional[Union[CharCorpusText, ByteCorpusText]]:
    """The encoder of a byte dictionary, of a character dictionary (every symbol one character, besides the
    `madeupword` fillers of fairseq-preprocess --padding-factor), else None (fairseq's own whitespace split)."""
    if is_byte_dictionary(dictionary):
        return ByteCorpusText()
    symbols = [s for s in dictionary.symbols[dictionary.nspecial:] if not s.startswith("madeupword")]
    return CharCorpusText() if symbols and all(len(s) == 1 for s in symbols) else None
