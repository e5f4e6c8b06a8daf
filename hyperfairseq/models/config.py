"""What the model configs share: named rules their values must satisfy, and the HyperLSTM stack they describe.

Each model lists its rules once (`RULES` beside its dataclass) and checks them in its build method, so a bad
value fails before anything is built, with a message naming the flag, what was expected and what was found.
Dropout fields are *drop* probabilities (the paper gives keep probabilities: keep 0.9 is 0.1).
"""

from typing import Any, Callable, NamedTuple, Sequence, Tuple

from fairseq.utils import safe_getattr

from hyperfairseq.modules import HyperLSTM


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


def check_config(cfg, rules: Sequence[Rule]) -> None:
    """Raise ValueError for the first value that breaks a rule: "--n-z must be a positive integer; got 0"."""
    for rule in rules:
        if not rule.applies(cfg):
            continue
        for name in rule.fields:
            value = getattr(cfg, name)
            if not rule.holds(value):
                raise ValueError(f"--{name.replace('_', '-')} {rule.expected}; got {value}")


def build_hyperlstm(cfg, input_size: int, hidden_size: int, num_layers: int = 1) -> HyperLSTM:
    """The HyperLSTM stack a model config describes (the module's arguments under the config's paper names).

    `hyper_recurrent_dropout` (R7) and `layer_dropout` (between stacked layers) exist only where a model
    has a row that sets them (the language model; the handwriting model has `layer_dropout`); elsewhere they
    are off, the module's defaults.
    """
    return HyperLSTM(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        hyper_hidden_size=cfg.hyper_hidden_size,
        n_z=cfg.n_z,
        use_hyper=uses_hyper(cfg),
        layer_norm=cfg.layer_norm,
        recurrent_dropout=cfg.recurrent_dropout,
        hyper_recurrent_dropout=safe_getattr(cfg, "hyper_recurrent_dropout", 0.0),
        forget_bias=cfg.forget_bias,
        ln_eps=cfg.ln_eps,
        dropout=safe_getattr(cfg, "layer_dropout", 0.0),
    )
