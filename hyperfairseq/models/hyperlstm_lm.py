"""Character-level HyperLSTM language model `hyperlstm_lm` and one architecture per row of Tables 3-4.

HyperNetworks (arXiv 1609.09106v4) §4.3–4.4, Appendix A.3.3–A.3.4; paper-spec §3.3–3.4 and §2.6.
Use it with fairseq's stock task or hyperfairseq's TBPTT task::

    fairseq-train data-bin/ptb_char --user-dir hyperfairseq --task language_modeling \
        --arch ln_hyperlstm_lm_ptb --tokens-per-sample 100 --batch-size 128 ...

The dataclass defaults are Table 3's HyperLSTM (1000 units, N_ĥ 128, N_z 4); every other row of Tables 3
and 4 is a line of `architectures.TABLES` that changes some of them, beside the paper's row and the exact
parameter count (with the paper's vocabulary: PTB 50 symbols, enwik8 205) that tests assert through
`python -m hyperfairseq.params`. Dropout fields are *drop* probabilities: the paper's keep 0.90 is 0.1.
"""

from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum
from fairseq.models import FairseqLanguageModel, register_model
from fairseq.tasks.translation import TranslationTask
from torch import nn

from hyperfairseq.errors import InputError

from . import architectures
from .config import CELL_RULES, HyperLSTMCellConfig, build_hyperlstm, check_config, drop_probability, positive
from .hyperlstm_decoder import HyperLSTMDecoder
from .state_dict_check import ChecksCheckpointFit

INPUT_MODES = ChoiceEnum(["one_hot", "embedding"])


@dataclass
class HyperLSTMLanguageModelConfig(HyperLSTMCellConfig):
    decoder_hidden_size: int = field(default=1000, metadata={"help": "N_h, main LSTM units; Table 3 uses 1000"})
    decoder_layers: int = field(default=1, metadata={"help": "stacked HyperLSTM layers"})
    decoder_input: INPUT_MODES = field(
        default="one_hot", metadata={"help": "one_hot: the paper's inputs (R10); embedding: learned table"}
    )
    decoder_embed_dim: int = field(default=64, metadata={"help": "embedding size when --decoder-input embedding"})
    dropout_in: float = field(default=0.1, metadata={"help": "input dropout (drop prob.; paper keep 0.9 -> 0.1)"})
    dropout_out: float = field(default=0.1, metadata={"help": "output dropout before the softmax layer"})
    recurrent_dropout: float = field(
        default=0.1, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13 (drop prob.; keep 0.9 -> 0.1)"}
    )
    layer_dropout: float = field(default=0.0, metadata={"help": "dropout between stacked layers"})


RULES = CELL_RULES + (
    positive("decoder_hidden_size", "decoder_layers"),
    positive("decoder_embed_dim", when=lambda cfg: cfg.decoder_input == "embedding"),
    drop_probability("dropout_in", "dropout_out", "layer_dropout"),
)


@register_model("hyperlstm_lm", dataclass=HyperLSTMLanguageModelConfig)
class HyperLSTMLanguageModel(ChecksCheckpointFit, FairseqLanguageModel):
    """`--arch hyperlstm_lm` and its table rows: a HyperLSTM (or LSTM) over one-hot characters."""

    @classmethod
    def build_model(cls, cfg: HyperLSTMLanguageModelConfig, task):
        if isinstance(task, TranslationTask):  # fairseq-generate --task translation --path <an LM checkpoint>
            raise InputError(f"--arch {getattr(cfg, '_name', 'hyperlstm_lm')} is a language model; --task translation "
                             "needs a translation model (--arch hyperlstm_mt or a Table 6 row); evaluate a language "
                             "model with fairseq-eval-lm --task char_lm")
        return cls(cls.build_decoder(cfg, task.target_dictionary, len(task.target_dictionary)))

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="model.pt", data_name_or_path=".", **kwargs):
        """fairseq's hub interface (`.score`, `.sample`, `.generate`) over plain text: unless `bpe=` is given,
        text maps to the symbols through the task's `build_bpe` (`--task char_lm`: as the data was prepared)."""
        hub = super().from_pretrained(model_name_or_path, checkpoint_file, data_name_or_path, **kwargs)
        if hub.bpe is None:
            hub.bpe = hub.task.build_bpe(hub.cfg.bpe)
        return hub

    @classmethod
    def build_decoder(cls, cfg: HyperLSTMLanguageModelConfig, dictionary, num_symbols: int) -> HyperLSTMDecoder:
        """The decoder over `num_symbols` symbols (the dictionary's size, or the paper's V in `params`)."""
        check_config(cfg, RULES)
        embed_tokens = None
        input_size = num_symbols
        if cfg.decoder_input == "embedding":
            pad = dictionary.pad() if dictionary is not None else None
            embed_tokens = nn.Embedding(num_symbols, cfg.decoder_embed_dim, padding_idx=pad)
            input_size = cfg.decoder_embed_dim
        rnn = build_hyperlstm(cfg, input_size, cfg.decoder_hidden_size, cfg.decoder_layers, cfg.layer_dropout)
        return HyperLSTMDecoder(dictionary, num_symbols, rnn, embed_tokens, cfg.dropout_in, cfg.dropout_out)


architectures.register("hyperlstm_lm", HyperLSTMLanguageModelConfig)
