"""What the model configs share: the HyperLSTM's fields, the rules values must satisfy, the stack they describe.

Every model config extends `HyperLSTMCellConfig` (the module's arguments under their paper names) and
declares a field again only where its table's default differs (Table 6: N_z 32, layer norm on). Each model
lists its rules once (`RULES` beside its dataclass, starting with `CELL_RULES`) and checks them in its build
method, so a bad value fails before anything is built, with a message naming the flag, what was expected
and what was found. Dropout fields are *drop* probabilities (the paper's keep 0.9 is 0.1).
"""

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence, Tuple

from fairseq.dataclass import FairseqDataclass

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM


@dataclass
class HyperLSTMCellConfig(FairseqDataclass):
    """The fields of every HyperLSTM cell of a model, with the paper's values (paper-spec §2)."""

    hyper_hidden_size: int = field(default=128, metadata={"help": "N_ĥ, hyper-cell units; 128 in every paper table"})
    n_z: int = field(default=4, metadata={"help": "N_z, embedding size per gate; Tables 3 and 5 use 4, enwik8 64"})
    no_hyper: bool = field(
        default=False, metadata={"help": "switch the hypernetwork off: the LSTM / LN-LSTM baselines, same code path"}
    )
    layer_norm: bool = field(default=False, metadata={"help": "layer norm per gate and on c (R8)"})
    recurrent_dropout: float = field(default=0.0, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13"})
    hyper_recurrent_dropout: float = field(
        default=0.0, metadata={"help": "recurrent dropout inside the hyper cell (enwik8-2048 only, R7)"}
    )
    forget_bias: float = field(default=1.0, metadata={"help": "added to the forget gate inside sigma (R2)"})
    ln_eps: float = field(default=1e-3, metadata={"help": "layer-norm epsilon (R8)"})


@dataclass
class PenModelConfig(HyperLSTMCellConfig):
    """What the two pen models add (Table 5's handwriting model, the synthesis net): the mixture-density
    output of §4.5 / Graves Eq. 18-26 and the handwriting rows' dropout (keep 0.95, H5)."""

    num_mixtures: int = field(default=20, metadata={"help": "M, bivariate Gaussian components (paper and Graves: 20)"})
    dropout_out: float = field(
        default=0.05, metadata={"help": "dropout on the top h before the MDN layer (H5; drop prob., keep 0.95 -> 0.05)"}
    )
    recurrent_dropout: float = field(
        default=0.05, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13 (drop prob.; keep 0.95 -> 0.05)"}
    )


def always(cfg) -> bool:
    return True


def uses_hyper(cfg) -> bool:
    return not cfg.no_hyper


class Rule(NamedTuple):
    """Every field in `fields` must satisfy `holds` (where `applies` to the config), else "--flag {expected}"."""

    name: str
    fields: Tuple[str, ...]
    holds: Callable[[Any], bool]
    expected: str
    applies: Callable[[Any], bool] = always


def positive(*fields: str, when: Callable[[Any], bool] = always) -> Rule:
    return Rule("positive", fields, lambda value: value >= 1, "must be a positive integer", when)


def at_least(minimum: int, field: str, why: str) -> Rule:
    return Rule(f"at least {minimum}", (field,), lambda value: value >= minimum, f"must be at least {minimum} ({why})")


def drop_probability(*fields: str) -> Rule:
    return Rule(
        "drop probability", fields, lambda value: 0.0 <= value < 1.0,
        "is a drop probability in [0, 1) (the paper's keep probability 0.9 is 0.1)",
    )


CELL_RULES = (
    positive("hyper_hidden_size", "n_z", when=uses_hyper),
    drop_probability("recurrent_dropout", "hyper_recurrent_dropout"),
)
PEN_RULES = CELL_RULES + (positive("num_mixtures"), drop_probability("dropout_out"))


def check_config(cfg, rules: Sequence[Rule]) -> None:
    """Raise InputError (a ValueError) for the first value that breaks a rule.

    E.g. "--n-z must be a positive integer; got 0".
    """
    for rule in rules:
        if not rule.applies(cfg):
            continue
        for name in rule.fields:
            value = getattr(cfg, name)
            if not rule.holds(value):
                raise InputError(f"--{name.replace('_', '-')} {rule.expected}; got {value}")


def build_hyperlstm(
    cfg: HyperLSTMCellConfig, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0
) -> HyperLSTM:
    """The HyperLSTM stack a model config describes; `dropout` between stacked layers (the models'
    `layer_dropout`)."""
    return HyperLSTM(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        hyper_hidden_size=cfg.hyper_hidden_size,
        n_z=cfg.n_z,
        use_hyper=uses_hyper(cfg),
        layer_norm=cfg.layer_norm,
        recurrent_dropout=cfg.recurrent_dropout,
        hyper_recurrent_dropout=cfg.hyper_recurrent_dropout,
        forget_bias=cfg.forget_bias,
        ln_eps=cfg.ln_eps,
        dropout=dropout,
    )
