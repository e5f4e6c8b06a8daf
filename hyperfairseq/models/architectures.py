"""Every named architecture as one row of a table: a diff of its model's base, with the paper's row beside it.

HyperNetworks (arXiv 1609.09106v4) Tables 3-6; paper-spec §4 (the rows as printed) and §2.6 (the counts).
A model's base is its config dataclass's defaults, which are the paper's main row of that model (Table 3's
HyperLSTM, Table 5's HyperLSTM, Table 6's GNMT HyperLSTM). A row names the fields it changes, our exact
parameter count (tests assert it through `python -m hyperfairseq.params`) and the paper's row copied from
paper-spec §4, bold and all. The model files register their rows with fairseq in a loop (`register`); the
params CLI, the hydra configs' test and the results page read the same rows. A new paper row is one line.
"""

import dataclasses
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from fairseq.models import register_model_architecture
from fairseq.utils import safe_getattr


class Row(NamedTuple):
    """One architecture (`--arch name`)."""

    name: str
    changes: Mapping[str, Any]  # the fields it sets differently from its model's base
    exact: int  # our parameter count with `vocab` symbols (paper-spec §2.6)
    paper: str  # the paper's row as printed in paper-spec §4: "model | result ... | count"
    note: str = ""  # a departure (decision ID) or how the row is reduced
    vocab: Optional[int] = None  # symbols counted, when not the table's


class Table(NamedTuple):
    """The rows of one paper table that one fairseq model implements."""

    model: str  # the fairseq model (`register_model` name)
    number: str  # the paper's table
    vocab: int  # symbols the paper counts with: one-hot inputs and softmax (PTB 50, enwik8 205), pen rows 3
    has_count: bool  # whether the paper's table prints a parameter count (its last column)
    rows: Tuple[Row, ...]


class Architecture(NamedTuple):
    """A row resolved against its table: what the params CLI and the results page read."""

    row: Row
    table: Table

    @property
    def vocab(self) -> int:
        return self.row.vocab or self.table.vocab

    @property
    def paper_cells(self) -> List[str]:
        """The paper's row split into cells, as printed (bold kept)."""
        return [cell.strip() for cell in self.row.paper.split("|")]

    @property
    def paper_millions(self) -> Optional[float]:
        """The paper's printed parameter count in millions, or None where its table prints none."""
        return float(plain(self.paper_cells[-1]).rstrip(" M")) if self.table.has_count else None

    def describe(self) -> str:
        """One line: table, the paper's row name and count, ours; the registered function's docstring."""
        paper = f"paper {self.paper_millions:.2f} M, " if self.table.has_count else ""
        note = f"; {self.row.note}" if self.row.note else ""
        return (
            f"Table {self.table.number}, {plain(self.paper_cells[0])}: {paper}ours {self.row.exact:,} "
            f"with {self.vocab:,} symbols{note}."
        )


def plain(text: str) -> str:
    return text.replace("**", "")


def keep(probability: float) -> Dict[str, float]:
    """The paper's keep probability of input, output and recurrent dropout as our drop probabilities."""
    drop = round(1.0 - probability, 6)
    return {"dropout_in": drop, "dropout_out": drop, "recurrent_dropout": drop}


LN = {"layer_norm": True}
LSTM = {"no_hyper": True}
LN_LSTM = {**LSTM, **LN}
ENWIK8 = {"decoder_hidden_size": 1800, "hyper_hidden_size": 256, "n_z": 64, "dropout_in": 0.0, "dropout_out": 0.0}
NO_RECURRENT_DROPOUT = {"recurrent_dropout": 0.0}
GNMT_LSTM = {"no_hyper": True}
GNMT_HYPER = LN  # Table 6: LN-HyperLSTM cells
MT_SMALL = {
    "encoder_embed_dim": 256, "encoder_hidden_size": 256, "encoder_layers": 2, "decoder_embed_dim": 256,
    "decoder_hidden_size": 256, "decoder_layers": 2, "attention_dim": 256, "hyper_hidden_size": 64, "n_z": 16,
}
WMT_LSTM, WMT_HYPER = "GNMT WPM-32K, LSTM (Wu et al., 2016) | 38.95 | 1.027", "**GNMT WPM-32K, HyperLSTM** | **40.03** | **0.993**"
SMALL = "reduced: 2 + 2 layers of 256, N_ĥ 64, N_z 16, 8,004 entries (modest data, tests)"

# fmt: off
TABLES = (
    Table("hyperlstm_lm", "3", 50, True, (  # Test | Validation | Param Count; base: HyperLSTM, 1000 units
        Row("lstm_lm_ptb_1000", LSTM, 4_254_050, "LSTM, 1000 units (their impl.) | 1.312 | 1.347 | 4.25 M"),
        Row("lstm_lm_ptb_1250", {**LSTM, "decoder_hidden_size": 1250}, 6_567_550, "LSTM, 1250 units (their impl.) | 1.306 | 1.340 | 6.57 M"),
        Row("lstm_lm_ptb_2layer", {**LSTM, "decoder_layers": 2}, 12_258_050, "2-Layer LSTM, 1000 units (their impl.) | 1.281 | 1.312 | 12.26 M"),
        Row("ln_lstm_lm_ptb", LN_LSTM, 4_260_050, "Layer Norm LSTM, 1000 units (their impl.) | 1.267 | 1.300 | 4.26 M", "no b_0 (R3)"),
        Row("hyperlstm_lm_ptb", {}, 4_911_874, "**HyperLSTM, 1000 units** | **1.265** | **1.296** | **4.91 M**", "N_ĥ 128, N_z 4"),
        Row("ln_hyperlstm_lm_ptb", LN, 4_922_642, "**Layer Norm HyperLSTM, 1000 units** | **1.250** | **1.281** | **4.92 M**"),
        Row("ln_hyperlstm_lm_ptb_large_emb", {**LN, "n_z": 16, **keep(0.85)}, 5_085_170, "**Layer Norm HyperLSTM, 1000 units, Large Embedding** | **1.233** | **1.263** | **5.06 M**", "R16: the printed count is not reproduced"),
        Row("ln_hyperlstm_lm_ptb_2layer", {**LN, "n_z": 16, "decoder_layers": 2, **keep(0.8)}, 14_406_690, "**2-Layer Norm HyperLSTM, 1000 units** | **1.219** | **1.245** | **14.41 M**", "two Large-Embedding layers"),
    )),
    Table("hyperlstm_lm", "4", 205, True, (  # enwik8 | Param Count
        Row("lstm_lm_enwik8_1800", {**ENWIK8, **LSTM, **NO_RECURRENT_DROPOUT}, 14_812_405, "LSTM, 1800 units, no recurrent dropout (their impl.) | 1.470 | 14.81 M"),
        Row("lstm_lm_enwik8_2000", {**ENWIK8, **LSTM, **NO_RECURRENT_DROPOUT, "decoder_hidden_size": 2000}, 18_058_205, "LSTM, 2000 units, no recurrent dropout (their impl.) | 1.461 | 18.06 M"),
        Row("ln_lstm_lm_enwik8", {**ENWIK8, **LN_LSTM}, 14_823_205, "Layer Norm LSTM, 1800 units (their impl.) | 1.402 | 14.82 M", "recurrent dropout keep 0.9"),
        Row("hyperlstm_lm_enwik8", ENWIK8, 18_708_213, "**HyperLSTM, 1800 units** | **1.391** | **18.71 M**", "N_ĥ 256, N_z 64"),
        Row("ln_hyperlstm_lm_enwik8", {**ENWIK8, **LN}, 18_727_749, "**Layer Norm HyperLSTM, 1800 units** | **1.353** | **18.78 M**", "R16: the printed count is not reproduced"),
        Row("ln_hyperlstm_lm_enwik8_2048", {**ENWIK8, **LN, "decoder_hidden_size": 2048, "hyper_hidden_size": 512, "recurrent_dropout": 0.15, "hyper_recurrent_dropout": 0.15}, 26_539_725, "**Layer Norm HyperLSTM, 2048 units** | **1.340** | **26.54 M**", "keep 0.85 in the main and the hyper cell (R7)"),
    )),
    Table("hyperlstm_handwriting", "5", 3, True, (  # Log-Loss | Param Count; base: HyperLSTM, 900 units
        Row("lstm_handwriting_900", LSTM, 3_363_421, "LSTM, 900 units (their impl., + augmentation, dropout, rec. dropout) | -1,055 | 3.36 M"),
        Row("lstm_handwriting_1000", {**LSTM, "decoder_hidden_size": 1000}, 4_137_121, "LSTM, 1000 units (same) | -1,048 | 4.14 M"),
        Row("lstm_handwriting_3layer_400", {**LSTM, "decoder_layers": 3, "decoder_hidden_size": 400}, 3_258_121, "3-Layer LSTM, 400 units (same) | -1,068 | 3.26 M", "a plain stack, no skip connections"),
        Row("lstm_handwriting_2layer_650", {**LSTM, "decoder_layers": 2, "decoder_hidden_size": 650}, 5_161_771, "2-Layer LSTM, 650 units (same) | -1,135 | 5.16 M"),
        Row("ln_lstm_handwriting_900", LN_LSTM, 3_368_821, "Layer Norm LSTM, 900 units (same) | -1,096 | 3.37 M", "no b_0 (R3)"),
        Row("ln_lstm_handwriting_1000", {**LN_LSTM, "decoder_hidden_size": 1000}, 4_143_121, "Layer Norm LSTM, 1000 units (same) | -1,106 | 4.14 M"),
        Row("ln_hyperlstm_handwriting", LN, 3_950_949, "**Layer Norm HyperLSTM, 900 units** | **-1,067** | **3.95 M**"),
        Row("hyperlstm_handwriting", {}, 3_941_181, "**HyperLSTM, 900 units** | **-1,162** | **3.94 M**", "N_ĥ 128, N_z 4"),
    )),
    Table("hyperlstm_mt", "6", 32_004, False, (  # Test BLEU | Log Perplexity; base: GNMT HyperLSTM; 32k pieces + 4
        Row("lstm_wmt", GNMT_LSTM, 280_872_196, WMT_LSTM, "plain LSTM cells, 8 + 8 layers of 1024"),
        Row("hyperlstm_wmt", GNMT_HYPER, 312_251_140, WMT_HYPER, "LN-HyperLSTM cells, 8 + 8 layers of 1024, N_ĥ 128, N_z 32"),
        Row("lstm_mt_small", {**GNMT_LSTM, **MT_SMALL}, 9_699_652, WMT_LSTM, SMALL, 8_004),
        Row("hyperlstm_mt_small", {**GNMT_HYPER, **MT_SMALL}, 10_957_380, WMT_HYPER, SMALL, 8_004),
    )),
)
# fmt: on
ARCHITECTURES: Dict[str, Architecture] = {row.name: Architecture(row, t) for t in TABLES for row in t.rows}


def of_model(model: str) -> Iterator[Architecture]:
    return (arch for arch in ARCHITECTURES.values() if arch.table.model == model)


def set_defaults(cfg, **defaults) -> None:
    """Set each field the command line left unset (fairseq's `safe_getattr` idiom)."""
    for key, value in defaults.items():
        setattr(cfg, key, safe_getattr(cfg, key, value))


def base_of(config_cls) -> Dict[str, Any]:
    """The config dataclass's defaults: the base every row of its model changes."""
    return {f.name: f.default for f in dataclasses.fields(config_cls) if not f.name.startswith("_")}


def row_fields(arch: Architecture, config_cls) -> Dict[str, Any]:
    """Every field `--arch name` sets: the row's changes over the base; a field the config lacks, or a row
    named after its model (fairseq made that name an arch of the bare base), is a TypeError."""
    base = base_of(config_cls)
    unknown = sorted(set(arch.row.changes) - set(base))
    if unknown:
        raise TypeError(f"architecture {arch.row.name}: {config_cls.__name__} has no field {', '.join(unknown)}")
    if arch.row.name == arch.table.model and arch.row.changes:
        raise TypeError(f"architecture {arch.row.name} is its model's own name and can only be the base")
    return {**base, **arch.row.changes}


def register(model: str, config_cls) -> None:
    """Register every row of `model` with fairseq: `--arch name` sets the row's changes, then the base."""
    for arch in of_model(model):
        fields = row_fields(arch, config_cls)
        if arch.row.name != model:  # `register_model` already registered the model's own name
            register_model_architecture(model, arch.row.name)(_arch_function(arch, fields))


def _arch_function(arch: Architecture, fields: Dict[str, Any]):
    def set_row(cfg) -> None:
        set_defaults(cfg, **fields)

    set_row.__name__ = set_row.__qualname__ = arch.row.name
    set_row.__doc__ = arch.describe()
    return set_row
