"""hyperfairseq.data.text_symbols: plain text to a char_lm dictionary's symbols and back (`--bpe char_corpus`,
`--bpe byte_corpus`), and the choice `--task char_lm` makes when no --bpe is given."""

import pytest
from fairseq.data import Dictionary, encoders

import hyperfairseq  # noqa: F401  (registers the encoders)
from hyperfairseq.data import text_symbols
from hyperfairseq.data.byte_corpus import byte_symbol
from hyperfairseq.data.char_corpus import CorpusError


def dictionary(symbols) -> Dictionary:
    d = Dictionary()
    for s in symbols:
        d.add_symbol(s)
    return d


def test_characters_round_trip_with_the_space_symbol():
    chars = encoders.build_bpe("char_corpus")
    assert chars.encode(" the company's 5 % ") == "t h e _ c o m p a n y ' s _ 5 _ %"
    assert chars.decode("t h e _ c o m p a n y ' s _ 5 _ %") == "the company's 5 %"
    assert chars.decode("a <unk> b") == "a<unk>b"  # a symbol that is not a character stays as fairseq prints it


def test_characters_without_a_symbol_are_refused_by_position():
    with pytest.raises(CorpusError, match="U\\+0009 .*whitespace '\\\\t' has no symbol; replace"):
        encoders.build_bpe("char_corpus").encode("a\tb")
    with pytest.raises(CorpusError, match="1:2: character U\\+000A .*\\(a line break inside one line"):
        encoders.build_bpe("char_corpus").encode("a\nb")  # was told to replace the line break with a line break


def test_bytes_round_trip_utf8_and_leave_out_non_byte_symbols():
    octets = encoders.build_bpe("byte_corpus")
    assert octets.encode("é a") == "0xc3 0xa9 0x20 0x61"
    assert octets.decode("0xc3 0xa9 <unk> 0x20 0x61") == "é a"
    assert octets.decode("0xc3") == "\ufffd"  # a cut character is replaced, not an error


def test_each_dictionary_gets_the_encoder_of_its_data():
    assert isinstance(text_symbols.for_dictionary(dictionary("ab_c")), text_symbols.CharCorpusText)
    padded = dictionary(["a", "b", "_", "madeupword0000", "madeupword0001"])  # fairseq-preprocess --padding-factor
    assert isinstance(text_symbols.for_dictionary(padded), text_symbols.CharCorpusText)
    octets = dictionary([byte_symbol(b) for b in b"abc "])
    assert isinstance(text_symbols.for_dictionary(octets), text_symbols.ByteCorpusText)
    assert text_symbols.for_dictionary(dictionary(["the", "company", "a"])) is None  # words: fairseq's split
