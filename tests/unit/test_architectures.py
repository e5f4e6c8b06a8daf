"""The architecture table (models/architectures.py): every row registered as its diff, counted, described once."""

import argparse

import pytest
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_NAME_REGISTRY, MODEL_REGISTRY

from hyperfairseq import params
from hyperfairseq.analysis.results import paper_tables
from hyperfairseq.models.architectures import ARCHITECTURES, Architecture, Row, Table, base_of, row_fields

ROWS = sorted(ARCHITECTURES)


def config_class(arch: Architecture):
    return MODEL_REGISTRY[arch.table.model].__dataclass


def test_the_table_holds_the_26_rows_of_tables_3_to_6():
    tables = [arch.table.number for arch in ARCHITECTURES.values()]
    assert {n: tables.count(n) for n in sorted(set(tables))} == {"3": 8, "4": 6, "5": 8, "6": 4}


@pytest.mark.parametrize("name", ROWS)
def test_registered_function_sets_the_base_then_the_row_and_says_so(name):
    arch = ARCHITECTURES[name]
    base = base_of(config_class(arch))
    ns = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[name](ns)
    assert ARCH_MODEL_NAME_REGISTRY[name] == arch.table.model
    assert all(base[k] != v for k, v in arch.row.changes.items()), "a row lists only what it changes"
    if name == arch.table.model:  # fairseq's no-op for the model's own name: the dataclass defaults apply
        assert vars(ns) == {} and arch.row.changes == {}
    else:
        assert vars(ns) == {**base, **arch.row.changes}
        assert ARCH_CONFIG_REGISTRY[name].__doc__ == arch.describe()


@pytest.mark.parametrize("name", [name for name in ROWS if ARCHITECTURES[name].table.number == "5"])
def test_every_table5_row_has_the_papers_dropout(name):
    """§4.5 (paper-spec §3.5): recurrent dropout and dropout on the output layer, keep 0.95, in every row."""
    arch = ARCHITECTURES[name]
    cfg = {**base_of(config_class(arch)), **arch.row.changes}
    assert (cfg["recurrent_dropout"], cfg["dropout_out"]) == (0.05, 0.05)  # drop probabilities: 1 - 0.95


@pytest.mark.parametrize("name", ROWS)
def test_params_cli_counts_the_rows_exact_number_with_its_vocabulary(name, capsys):
    assert params.main(["--arch", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    arch = ARCHITECTURES[name]
    assert lines[-1] == f"total: {arch.row.exact}"
    paper = next(line for line in lines if line.startswith("paper: "))
    assert f"(vocab {arch.vocab}), Table {arch.table.number}: " in paper


@pytest.mark.parametrize("name", [n for n in ROWS if ARCHITECTURES[n].paper_millions is not None])
def test_exact_count_rounds_to_the_printed_one_except_the_two_unexplained_rows(name):
    arch = ARCHITECTURES[name]
    matches = round(arch.row.exact / 1e6, 2) == arch.paper_millions
    assert matches != arch.row.note.startswith("R16"), f"{name}: {arch.row.exact:,} vs {arch.paper_millions} M"


def test_translation_rows_have_no_printed_count_and_the_paper_row_is_read_by_cells():
    wmt = ARCHITECTURES["hyperlstm_wmt"]
    assert wmt.paper_millions is None and wmt.paper_cells == ["**GNMT WPM-32K, HyperLSTM**", "**40.03**", "**0.993**"]
    small = ARCHITECTURES["hyperlstm_mt_small"]
    assert small.row.paper == wmt.row.paper and small.vocab == 8004
    assert ARCHITECTURES["ln_hyperlstm_lm_ptb"].paper_millions == 4.92


def test_translation_breakdown_counts_embeddings_softmax_and_attention_apart(capsys):
    params.main(["--arch", "hyperlstm_mt_small"])
    lines = capsys.readouterr().out.splitlines()
    counts = dict(line.split(": ") for line in lines if not line.startswith(("paper", "note")))
    v, h = 8004, 256  # joined dictionary, N_h = embedding = attention size of the small rows
    assert int(counts["input"]) == 2 * v * h  # source and target embeddings
    assert int(counts["output"]) == h * v + v  # softmax
    assert int(counts["attention"]) == h * h + (h * h + h) + h  # query and key projections, score vector


def test_a_row_naming_a_field_its_config_lacks_or_renaming_the_base_is_rejected():
    config = config_class(ARCHITECTURES["hyperlstm_lm_ptb"])
    table = Table("hyperlstm_lm", "3", 50, True, ())
    with pytest.raises(TypeError, match="has no field decoder_hiden_size"):
        row_fields(Architecture(Row("typo", {"decoder_hiden_size": 5}, 1, "x | 1 M"), table), config)
    with pytest.raises(TypeError, match="its model's own name"):
        row_fields(Architecture(Row("hyperlstm_lm", {"n_z": 5}, 1, "x | 1 M"), table), config)


def test_params_cli_set_counts_a_changed_config_and_names_a_bad_setting(capsys):
    """`--set decoder_hidden_size=256` counts the row at 256 units: an LSTM over V one-hot symbols has
    4H(V + H + 1) main weights and a softmax of HV + V (the reduced Table 3 rows, scripts/table3_ptb.sh)."""
    h, v = 256, 50
    assert params.main(["--arch", "lstm_lm_ptb_1000", "--vocab", str(v), "--set", f"decoder_hidden_size={h}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"total: {4 * h * (v + h + 1) + h * v + v}"
    # repeated --set flags all apply (argparse kept only the last one): a second layer reads the first's h
    args = ["--arch", "lstm_lm_ptb_1000", "--vocab", str(v), "--set", f"decoder_hidden_size={h}", "--set"]
    assert params.main(args + ["decoder_layers=2"]) == 0
    two_layers = 4 * h * (v + h + 1) + 4 * h * (h + h + 1) + h * v + v
    assert capsys.readouterr().out.splitlines()[-1] == f"total: {two_layers}"
    for bad, why in (("decoder_hiden_size=5", "a field of the model's config"), ("n_z=four", "not a int")):
        with pytest.raises(SystemExit, match=why):
            params.main(["--arch", "hyperlstm_lm_ptb", "--set", bad])


def test_params_cli_without_a_row_needs_vocab():
    with pytest.raises(SystemExit):
        params.main(["--arch", "hyperlstm_lm"])


def test_the_results_page_reads_the_paper_rows_from_the_table():
    by_table = {table.key: table for table in paper_tables.TABLES}
    rows3 = paper_tables.architecture_rows("3")
    assert rows3[4] == ("**HyperLSTM, 1000 units**", ("**1.265**", "**1.296**", "**4.91 M**"), ("hyperlstm_lm_ptb",))
    assert [archs for _, _, archs in paper_tables.architecture_rows("6")] == [
        ("lstm_wmt", "lstm_mt_small"), ("hyperlstm_wmt", "hyperlstm_mt_small")]
    for key in ("3", "4", "5", "6"):
        ours = [archs for _, _, archs in by_table[key].rows if archs]
        assert sorted(a for archs in ours for a in archs) == sorted(
            name for name, arch in ARCHITECTURES.items() if arch.table.number == key)
        assert all(len(values) == len(by_table[key].columns) for _, values, _ in by_table[key].rows), key
