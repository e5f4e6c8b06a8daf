"""Character-level HyperLSTM language model `hyperlstm_lm` and one architecture per row of Tables 3-4.

HyperNetworks (arXiv 1609.09106v4) §4.3–4.4, Appendix A.3.3–A.3.4; paper-spec §3.3–3.4 and §2.6.
Use it with fairseq's stock task or hyperfairseq's TBPTT task::

    fairseq-train data-bin/ptb_char --user-dir hyperfairseq --task language_modeling \
        --arch ln_hyperlstm_lm_ptb --tokens-per-sample 100 --batch-size 128 ...

Every architecture sets only what its table row changes; the docstring of each gives the row and the
parameter count (with the paper's vocabulary: PTB 50 symbols, enwik8 205) that tests assert through
`python -m hyperfairseq.params`. Dropout fields are *drop* probabilities: the paper's keep 0.90 is 0.1.
"""

from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import FairseqLanguageModel, register_model, register_model_architecture
from torch import nn

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM

from .hyperlstm_decoder import HyperLSTMDecoder
from .arch_utils import set_defaults as _set
from .state_dict_check import check_state_dict_fits

INPUT_MODES = ChoiceEnum(["one_hot", "embedding"])


@dataclass
class HyperLSTMLanguageModelConfig(FairseqDataclass):
    decoder_hidden_size: int = field(default=1000, metadata={"help": "N_h, main LSTM units; Table 3 uses 1000"})
    decoder_layers: int = field(default=1, metadata={"help": "stacked HyperLSTM layers"})
    hyper_hidden_size: int = field(default=128, metadata={"help": "N_ĥ, hyper-LSTM units; Table 3 uses 128"})
    n_z: int = field(default=4, metadata={"help": "N_z, embedding size per gate; Table 3 uses 4"})
    no_hyper: bool = field(
        default=False,
        metadata={"help": "switch the hypernetwork off: the LSTM / LN-LSTM baseline, same code path"},
    )
    layer_norm: bool = field(default=False, metadata={"help": "layer norm per gate and on c (R8)"})
    decoder_input: INPUT_MODES = field(
        default="one_hot", metadata={"help": "one_hot: the paper's inputs (R10); embedding: learned table"}
    )
    decoder_embed_dim: int = field(default=64, metadata={"help": "embedding size when --decoder-input embedding"})
    dropout_in: float = field(default=0.1, metadata={"help": "input dropout (drop prob.; paper keep 0.9 -> 0.1)"})
    dropout_out: float = field(default=0.1, metadata={"help": "output dropout before the softmax layer"})
    recurrent_dropout: float = field(
        default=0.1, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13 (drop prob.; keep 0.9 -> 0.1)"}
    )
    hyper_recurrent_dropout: float = field(
        default=0.0, metadata={"help": "recurrent dropout inside the hyper cell (enwik8-2048 only, R7)"}
    )
    layer_dropout: float = field(default=0.0, metadata={"help": "dropout between stacked layers"})
    forget_bias: float = field(default=1.0, metadata={"help": "added to the forget gate inside sigma (R2)"})
    ln_eps: float = field(default=1e-3, metadata={"help": "layer-norm epsilon (R8)"})


@register_model("hyperlstm_lm", dataclass=HyperLSTMLanguageModelConfig)
class HyperLSTMLanguageModel(FairseqLanguageModel):
    """`--arch hyperlstm_lm` and its table rows: a HyperLSTM (or LSTM) over one-hot characters."""

    @classmethod
    def build_model(cls, cfg: HyperLSTMLanguageModelConfig, task):
        return cls(cls.build_decoder(cfg, task.target_dictionary, len(task.target_dictionary)))

    @classmethod
    def build_decoder(cls, cfg: HyperLSTMLanguageModelConfig, dictionary, num_symbols: int) -> HyperLSTMDecoder:
        """The decoder over `num_symbols` symbols (the dictionary's size, or the paper's V in `params`)."""
        _check_config(cfg)
        embed_tokens = None
        input_size = num_symbols
        if cfg.decoder_input == "embedding":
            pad = dictionary.pad() if dictionary is not None else None
            embed_tokens = nn.Embedding(num_symbols, cfg.decoder_embed_dim, padding_idx=pad)
            input_size = cfg.decoder_embed_dim
        rnn = HyperLSTM(
            input_size=input_size,
            hidden_size=cfg.decoder_hidden_size,
            num_layers=cfg.decoder_layers,
            hyper_hidden_size=cfg.hyper_hidden_size,
            n_z=cfg.n_z,
            use_hyper=not cfg.no_hyper,
            layer_norm=cfg.layer_norm,
            recurrent_dropout=cfg.recurrent_dropout,
            hyper_recurrent_dropout=cfg.hyper_recurrent_dropout,
            forget_bias=cfg.forget_bias,
            ln_eps=cfg.ln_eps,
            dropout=cfg.layer_dropout,
        )
        return HyperLSTMDecoder(dictionary, num_symbols, rnn, embed_tokens, cfg.dropout_in, cfg.dropout_out)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict:
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


def _check_config(cfg) -> None:
    """Reject impossible combinations once, naming the flags and the values found."""
    positive = ["decoder_hidden_size", "decoder_layers"]
    if not cfg.no_hyper:
        positive += ["hyper_hidden_size", "n_z"]
    if cfg.decoder_input == "embedding":
        positive.append("decoder_embed_dim")
    for name in positive:
        value = getattr(cfg, name)
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer; got {value}")
    for name in ("dropout_in", "dropout_out", "recurrent_dropout", "hyper_recurrent_dropout", "layer_dropout"):
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise InputError(
                f"--{name.replace('_', '-')} is a drop probability in [0, 1) (the paper's keep 0.9 is 0.1); got {value}"
            )


# -- architectures: one per row of Tables 3 and 4 -------------------------------------------------
# PAPER_PARAMS: the paper's printed count (millions) and the vocabulary it counts with.
PAPER_PARAMS = {}


def _arch(name, paper_m, vocab):
    def register(fn):
        PAPER_PARAMS[name] = {"paper_millions": paper_m, "vocab": vocab}
        return register_model_architecture("hyperlstm_lm", name)(fn)

    return register


def base_architecture(cfg):
    """The dataclass defaults (what `--arch hyperlstm_lm` gets): Table 3's HyperLSTM, 1000 units, N_ĥ 128, N_z 4."""
    _set(
        cfg, decoder_hidden_size=1000, decoder_layers=1, hyper_hidden_size=128, n_z=4, no_hyper=False,
        layer_norm=False, decoder_input="one_hot", decoder_embed_dim=64, dropout_in=0.1, dropout_out=0.1,
        recurrent_dropout=0.1, hyper_recurrent_dropout=0.0, layer_dropout=0.0, forget_bias=1.0, ln_eps=1e-3,
    )


@_arch("hyperlstm_lm_ptb", 4.91, 50)
def hyperlstm_lm_ptb(cfg):
    """Table 3, HyperLSTM 1000 units (N_ĥ 128, N_z 4): 4.91 M (exact 4,911,874)."""
    base_architecture(cfg)


@_arch("ln_hyperlstm_lm_ptb", 4.92, 50)
def ln_hyperlstm_lm_ptb(cfg):
    """Table 3, Layer Norm HyperLSTM 1000 units: 4.92 M (exact 4,922,642)."""
    _set(cfg, layer_norm=True)
    base_architecture(cfg)


@_arch("ln_hyperlstm_lm_ptb_large_emb", 5.06, 50)
def ln_hyperlstm_lm_ptb_large_emb(cfg):
    """Table 3, LN HyperLSTM, Large Embedding (N_z 16, keep 0.85): paper 5.06 M, ours 5,085,170 (R16)."""
    _set(cfg, layer_norm=True, n_z=16, dropout_in=0.15, dropout_out=0.15, recurrent_dropout=0.15)
    base_architecture(cfg)


@_arch("ln_hyperlstm_lm_ptb_2layer", 14.41, 50)
def ln_hyperlstm_lm_ptb_2layer(cfg):
    """Table 3, 2-Layer Norm HyperLSTM (two Large-Embedding layers, keep 0.80): 14.41 M (exact 14,406,690)."""
    _set(cfg, layer_norm=True, n_z=16, decoder_layers=2, dropout_in=0.2, dropout_out=0.2, recurrent_dropout=0.2)
    base_architecture(cfg)


@_arch("lstm_lm_ptb_1000", 4.25, 50)
def lstm_lm_ptb_1000(cfg):
    """Table 3, LSTM 1000 units (recurrent dropout, keep 0.9): 4.25 M (exact 4,254,050)."""
    _set(cfg, no_hyper=True)
    base_architecture(cfg)


@_arch("lstm_lm_ptb_1250", 6.57, 50)
def lstm_lm_ptb_1250(cfg):
    """Table 3, LSTM 1250 units: 6.57 M (exact 6,567,550)."""
    _set(cfg, no_hyper=True, decoder_hidden_size=1250)
    base_architecture(cfg)


@_arch("lstm_lm_ptb_2layer", 12.26, 50)
def lstm_lm_ptb_2layer(cfg):
    """Table 3, 2-Layer LSTM 1000 units: 12.26 M (exact 12,258,050)."""
    _set(cfg, no_hyper=True, decoder_layers=2)
    base_architecture(cfg)


@_arch("ln_lstm_lm_ptb", 4.26, 50)
def ln_lstm_lm_ptb(cfg):
    """Table 3, Layer Norm LSTM 1000 units (no b_0, R3): 4.26 M (exact 4,260,050)."""
    _set(cfg, no_hyper=True, layer_norm=True)
    base_architecture(cfg)


def _enwik8(cfg, **row):
    """enwik8 rows (§3.4): no input/output dropout, recurrent dropout keep 0.9, 1800 units, N_ĥ 256, N_z 64."""
    _set(cfg, **row)
    _set(cfg, decoder_hidden_size=1800, hyper_hidden_size=256, n_z=64, dropout_in=0.0, dropout_out=0.0)
    base_architecture(cfg)


@_arch("hyperlstm_lm_enwik8", 18.71, 205)
def hyperlstm_lm_enwik8(cfg):
    """Table 4, HyperLSTM 1800 units (N_ĥ 256, N_z 64): 18.71 M (exact 18,708,213)."""
    _enwik8(cfg)


@_arch("ln_hyperlstm_lm_enwik8", 18.78, 205)
def ln_hyperlstm_lm_enwik8(cfg):
    """Table 4, Layer Norm HyperLSTM 1800 units: paper 18.78 M, ours 18,727,749 (R16)."""
    _enwik8(cfg, layer_norm=True)


@_arch("ln_hyperlstm_lm_enwik8_2048", 26.54, 205)
def ln_hyperlstm_lm_enwik8_2048(cfg):
    """Table 4, LN HyperLSTM 2048 units (N_ĥ 512, N_z 64, keep 0.85 in main and hyper cell, R7): 26.54 M."""
    _enwik8(
        cfg, layer_norm=True, decoder_hidden_size=2048, hyper_hidden_size=512,
        recurrent_dropout=0.15, hyper_recurrent_dropout=0.15,
    )


@_arch("lstm_lm_enwik8_1800", 14.81, 205)
def lstm_lm_enwik8_1800(cfg):
    """Table 4, LSTM 1800 units, no recurrent dropout: 14.81 M (exact 14,812,405)."""
    _enwik8(cfg, no_hyper=True, recurrent_dropout=0.0)


@_arch("lstm_lm_enwik8_2000", 18.06, 205)
def lstm_lm_enwik8_2000(cfg):
    """Table 4, LSTM 2000 units, no recurrent dropout: 18.06 M (exact 18,058,205)."""
    _enwik8(cfg, no_hyper=True, recurrent_dropout=0.0, decoder_hidden_size=2000)


@_arch("ln_lstm_lm_enwik8", 14.82, 205)
def ln_lstm_lm_enwik8(cfg):
    """Table 4, Layer Norm LSTM 1800 units (recurrent dropout keep 0.9): 14.82 M (exact 14,823,205)."""
    _enwik8(cfg, no_hyper=True, layer_norm=True)
