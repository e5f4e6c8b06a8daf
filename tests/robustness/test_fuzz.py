"""Fuzzing the parsers with hypothesis, within a fixed budget (issue 12 §5).

Each property runs a fixed number of examples (`BUDGET`, derandomised: the same examples on every run,
so a failure reproduces) and asserts that the parser either accepts its input with the documented
result or raises its documented error type, never anything else:

* the one text rule (char_corpus / CharLM.encode on the real trained model): refused with CorpusError,
  or decoded back to the text with each line's edge spaces dropped;
* IAM-OnDB lineStrokes XML (mutations of a schema-exact fixture) and the stroke row round trip;
* KanjiVG SVG paths: random text parses or raises ValueError; paths written by the grammar all parse,
  through every endpoint;
* dict.txt and the mmap .idx / .bin pair (mutations of the real binarised char-PTB slice): InputError,
  or fairseq reads them with the same symbol / item counts.
"""

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperfairseq.data import binarised, kanjivg
from hyperfairseq.data import strokes as S
from hyperfairseq.data.char_corpus import CorpusError, convert_lines, split_lines
from hyperfairseq.data.iam_ondb import LineFileError, parse_line_strokes
from hyperfairseq.errors import InputError

from .harness import REPO

BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FIXTURE = REPO / "tests/data/iam/raw/lineStrokes/a01/a01-000/a01-000u-01.xml"
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2028\u2029\u0085\u3000_"


@pytest.fixture(scope="module")
def lm(lm_assets):
    from hyperfairseq.sample import CharLM

    return CharLM.from_checkpoint(str(lm_assets["lm"]), str(lm_assets["lm_data"]))


def alphabet_text(lm):
    symbols = [s for s in lm.dictionary.symbols[lm.dictionary.nspecial:] if len(s) == 1 and s != "_"]
    pieces = st.sampled_from(symbols + list(WHITESPACE) + ["é", "\r\n"])
    return st.lists(pieces, max_size=60).map("".join)


@BUDGET
@given(data=st.data())
def test_text_is_refused_or_decoded_back(lm, data):
    text = data.draw(alphabet_text(lm))
    try:
        ids = lm.encode(text)
    except CorpusError as err:
        assert "cannot be represented" in str(err) or "not in the model's dictionary" in str(err)
        return
    expected = "".join(line.strip(" ") + "\n" for line in split_lines(text))
    assert lm.decode(ids) == expected


@BUDGET
@given(data=st.data())
def test_a_prefix_is_read_as_written_up_to_its_last_character(lm, data):
    """Bug: `hyperfairseq.sample --prefix "the compan "` fed "the compan" and printed the space anyway, and a
    prefix ending in a line break got no end-of-line symbol. A prefix's last line keeps its trailing spaces and
    ends (end-of-line symbol) only where the prefix ends with a line break; earlier lines are read as corpus
    lines (stripped)."""
    text = data.draw(alphabet_text(lm))
    try:
        ids = lm.encode(text, line_ends=False)
    except CorpusError:
        return
    lines = split_lines(text)
    ended = text.endswith("\n")
    expected = "".join(line.strip(" ") + "\n" for line in (lines if ended else lines[:-1]))
    if lines and not ended:
        expected += lines[-1].lstrip(" ")
    assert lm.decode(ids) == expected


@BUDGET
@given(text=st.text(max_size=80))
def test_char_corpus_lines_have_one_printable_symbol_each(text):
    try:
        lines = convert_lines(split_lines(text), "fuzz")
    except CorpusError:
        return
    for line in lines:
        assert all(len(s) == 1 and not s.isspace() for s in line.split(" ") if line)


@BUDGET
@given(data=st.data())
def test_line_strokes_xml_parses_or_is_a_categorised_skip(data):
    raw = bytearray(FIXTURE.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at: at + data.draw(st.integers(0, 8))] = data.draw(st.binary(max_size=8))
    try:
        strokes = parse_line_strokes(bytes(raw), "fuzz.xml")
    except LineFileError as err:
        assert err.reason in {"malformed XML", "not a lineStrokes file", "empty StrokeSet", "bad coordinates",
                              "absurd coordinates"}
        return
    assert strokes and all(s.ndim == 2 and s.shape[1] == 2 and len(s) for s in strokes)


@BUDGET
@given(st.lists(st.lists(st.tuples(st.integers(-9000, 9000), st.integers(-9000, 9000)), min_size=1, max_size=6),
                min_size=1, max_size=5))
def test_stroke_rows_round_trip(points):
    strokes = [np.array(s, dtype=np.float64) for s in points]
    back = S.offsets_to_points(S.points_to_offsets(strokes))
    assert len(back) == len(strokes) and all(np.allclose(a, b) for a, b in zip(back, strokes))


@BUDGET
@given(st.text(alphabet="MmLlCcSsZz0123456789.,- e", max_size=40))
def test_kanjivg_path_parses_or_raises_value_error(d):
    try:
        points = kanjivg.path_to_points(d, 3)
    except ValueError:
        return
    assert points.ndim == 2 and points.shape[1] == 2


ARGS = {"M": 2, "L": 2, "C": 6, "S": 4}  # numbers per command letter (SVG 1.1 §8.3)
COMMAND = st.tuples(st.sampled_from("MmLlCcSs"), st.lists(st.integers(-999, 999), min_size=6, max_size=6),
                    st.sampled_from([" ", ",", ", "]), st.booleans())


@BUDGET
@given(st.lists(COMMAND, min_size=1, max_size=6))
def test_kanjivg_grammatical_paths_parse_through_every_endpoint(commands):
    """Paths written by the grammar (absolute and relative commands, numbers as KanjiVG writes them: decimals,
    separators, a minus sign glued to the number before it, the letter repeated or implicit): every one
    parses, into 1 point per M/L and 3 per C/S (at points_per_curve 3), passing through each command's
    endpoint (the last pair of its numbers, added to the current point when the letter is lower case)."""
    if commands[0][0] not in "Mm":
        commands[0] = ("M",) + commands[0][1:]  # a path starts with a moveto
    d, cur, ends, count, letter = "", np.zeros(2), [], 0, None
    for command, numbers, sep, implicit in commands:
        values = [n / 10 for n in numbers[: ARGS[command.upper()]]]
        text = sep.join(f"{v:g}" for v in values).replace(f"{sep}-", "-")
        repeated = implicit and command == letter and command not in "Mm"  # "L1 2 3 4": two linetos
        d += (text if text.startswith("-") else sep + text) if repeated else f" {command}{text}"
        letter = command
        end = np.array(values[-2:]) + (cur if command.islower() else 0)
        count += 1 if command.upper() in "ML" else 3
        cur = end
        ends.append((count - 1, end))
    points = kanjivg.path_to_points(d, 3)
    assert points.shape == (count, 2), d
    for index, end in ends:
        np.testing.assert_allclose(points[index], end, rtol=0, atol=1e-9, err_msg=d)  # sums of ≤ 6 decimals


@pytest.fixture
def damaged_copy(lm_assets, tmp_path):
    def fresh():
        target = tmp_path / "data"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(lm_assets["lm_data"], target)
        return target
    return fresh


@BUDGET
@given(data=st.data())
def test_dictionary_is_refused_or_loads_the_same_symbols(damaged_copy, data):
    from fairseq.data import Dictionary

    folder = damaged_copy()
    lines = (folder / "dict.txt").read_text().splitlines()
    edit = data.draw(st.sampled_from(["duplicate", "drop_count", "junk", "blank", "special", "keep"]))
    k = data.draw(st.integers(0, len(lines) - 1))
    edits = {"duplicate": lines + [lines[k]], "drop_count": lines[:k] + [lines[k].split(" ")[0]] + lines[k + 1:],
             "junk": lines + [data.draw(st.text(max_size=12))], "blank": lines[:k] + [""] + lines[k:],
             "special": lines + ["</s> 1"], "keep": lines}
    (folder / "dict.txt").write_text("\n".join(edits[edit]) + "\n")
    try:
        count = binarised.check_dictionary(str(folder / "dict.txt"))
    except InputError:
        return
    assert len(Dictionary.load(str(folder / "dict.txt"))) == count + 4


@BUDGET
@given(data=st.data())
def test_split_is_refused_or_read_whole(damaged_copy, data):
    from fairseq.data import indexed_dataset

    folder = damaged_copy()
    name = data.draw(st.sampled_from(["valid.idx", "valid.bin"]))
    raw = bytearray((folder / name).read_bytes())
    cut = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if cut == "flip":
        raw[at] ^= data.draw(st.integers(1, 255))
    elif cut == "truncate":
        raw = raw[:at]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=16))
    (folder / name).write_bytes(bytes(raw))
    try:
        n = binarised.check_split(str(folder / "valid"))
    except InputError:
        return
    items = indexed_dataset.MMapIndexedDataset(str(folder / "valid"))
    assert len(items) == n and sum(len(items[i]) for i in range(n)) == int(items.sizes.sum())
