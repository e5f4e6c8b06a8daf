"""GNMT-shaped HyperLSTM translation model `hyperlstm_mt` and the Table 6 architectures.

HyperNetworks (arXiv 1609.09106v4) §4.6, Appendix A.3.6; paper-spec §3.6, Table 6, N1. The paper replaces
every LSTM cell of GNMT's WPM-32K model (Wu et al. 2016) by a layer-normalised HyperLSTM (N_ĥ 128, N_z 32)::

    fairseq-train data-bin/wmt14_en_fr --user-dir hyperfairseq --task translation --arch hyperlstm_wmt ...
    fairseq-generate data-bin/wmt14_en_fr --user-dir hyperfairseq --path checkpoints/checkpoint_best.pt \
        --beam 4 --remove-bpe sentencepiece --scoring sacrebleu

Shape (GNMT §3, recalled, unverified here: paper-spec §3.6). Encoder: embedding -> bottom layer
bidirectional (a forward and a backward cell, N_h each, outputs concatenated to 2·N_h) -> unidirectional
layers; decoder: embedding -> layers; residual connections (output + input) from the third layer up in
both. Additive attention: the query is the bottom decoder layer's output at step t, and the context c_t is
concatenated to the input of every decoder layer above it; the bottom layer reads [y_{t-1}; c_{t-1}]
(input feeding). Softmax over the top decoder layer's output. Choices of ours (not in GNMT or the paper):
zero initial decoder state, input feeding into the bottom layer, dropout on every layer's input and before
the softmax, the HyperLSTM module's own initialisation (paper-spec §2.4) instead of GNMT's uniform ±0.04.

Cell types (same code path): `--no-hyper` / `--layer-norm` select HyperLSTM, LN-HyperLSTM, LSTM, LN-LSTM
(`--arch hyperlstm_mt` alone: HyperLSTM cells without layer norm). The dataclass defaults are Table 6's GNMT
HyperLSTM (`hyperlstm_wmt`) but for layer norm, which that row turns on; the rows (`hyperlstm_wmt`,
`lstm_wmt` and the reduced `*_mt_small`) are lines of `architectures.TABLES`, each with its exact parameter count.

fairseq's translation task left-pads the source; the encoder moves every row's tokens to the left
(a stable gather, so any padding side works) and runs the HyperLSTM module with `lengths`. The backward
direction runs the module on each sequence reversed within its length. Attention weights are returned
in the caller's source layout (for --print-alignment / --replace-unk).

Incremental state (beam search, sampling, fairseq-interactive): every layer's h, c, ĥ, ĉ, stacked
(L, B, size), and the last attention context (B, N_enc), reordered after every beam step.
"""

from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from fairseq.models import FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder, register_model
from fairseq.modules import FairseqDropout
from torch import Tensor, nn

from hyperfairseq.modules import HyperLSTMState, reorder_state
from hyperfairseq.modules.attention import AdditiveAttention
from hyperfairseq.modules.state import layer_state, stack_states

from . import architectures
from .config import CELL_RULES, HyperLSTMCellConfig, at_least, build_hyperlstm, check_config, drop_probability, positive
from .state_dict_check import ChecksCheckpointFit, RemembersDictionary

RESIDUAL_FROM = 3  # GNMT: residual connections start at the third layer (1-based), encoder and decoder
STATE_KEY = "hyperlstm_mt_state"


@dataclass
class HyperLSTMTranslationConfig(HyperLSTMCellConfig):
    """The GNMT-shaped encoder-decoder of Table 6 (8 + 8 layers of 1,024, N_z 32, layer norm), as HyperLSTMs."""

    encoder_embed_dim: int = field(default=1024, metadata={"help": "source embedding size (GNMT 1024)"})
    encoder_hidden_size: int = field(default=1024, metadata={"help": "N_h of every encoder cell, each direction"})
    encoder_layers: int = field(default=8, metadata={"help": "encoder layers, the bidirectional bottom one included"})
    decoder_embed_dim: int = field(default=1024, metadata={"help": "target embedding size (GNMT 1024)"})
    decoder_hidden_size: int = field(default=1024, metadata={"help": "N_h of every decoder cell"})
    decoder_layers: int = field(default=8, metadata={"help": "decoder layers"})
    attention_dim: int = field(default=1024, metadata={"help": "hidden size of the additive attention"})
    n_z: int = field(default=32, metadata={"help": "N_z, embedding size per gate; Table 6 uses 32"})
    # off by default, as in every config of ours: fairseq makes a True boolean a store_false flag, so that
    # `--layer-norm` would switch it off; the Table 6 HyperLSTM rows turn it on
    layer_norm: bool = field(default=False, metadata={"help": "layer norm per gate and on c (R8); Table 6's "
                                                       "HyperLSTM rows: on"})
    dropout: float = field(default=0.2, metadata={"help": "drop prob. on every layer's input and before the softmax"})
    # a recurrence has no length limit: fairseq's `lstm` default (1e5), not a Transformer's 1024
    max_source_positions: int = field(default=100000, metadata={"help": "longest source accepted, in tokens"})
    max_target_positions: int = field(default=100000, metadata={"help": "longest target accepted, in tokens"})


class EncoderOut(NamedTuple):
    """outputs (S, B, N_enc) in left-aligned layout; padding_mask (S, B), True at padding;
    order (B, S): column j of the left-aligned layout came from source position order[b, j]."""

    outputs: Tensor
    padding_mask: Tensor
    order: Tensor


RULES = CELL_RULES + (
    positive("encoder_embed_dim", "encoder_hidden_size", "decoder_embed_dim", "decoder_hidden_size", "attention_dim"),
    at_least(2, "encoder_layers", "bidirectional + one"),
    positive("decoder_layers"),
    drop_probability("dropout"),
)


class BottomOut(NamedTuple):
    """Layer 1 of the decoder over T target steps: outputs h (T, B, N_h), contexts c_t (T, B, N_enc),
    attention weights (B, T, S) in left-aligned layout, and its final one-layer state."""

    outputs: Tensor
    contexts: Tensor
    weights: Tensor
    state: HyperLSTMState


def one_layer(state: HyperLSTMState, layer: int) -> HyperLSTMState:
    """Layer `layer` of a stacked state as the state of a one-layer stack: fields (1, B, size)."""
    return HyperLSTMState(*(None if s is None else s[layer : layer + 1] for s in state))


def left_align(tokens: Tensor, pad: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(B, S) tokens padded on either side -> (tokens with padding on the right, lengths (B,), order (B, S))."""
    is_pad = tokens.eq(pad)
    order = torch.sort(is_pad.to(torch.uint8), dim=1, stable=True).indices
    return tokens.gather(1, order), (~is_pad).sum(1), order


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """(S, B) index reversing each right-padded sequence within its length (an involution)."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)
    n = lengths.unsqueeze(0)
    return torch.where(t < n, n - 1 - t, t)


def _time_gather(x: Tensor, index: Tensor) -> Tensor:
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


class HyperLSTMEncoder(RemembersDictionary, FairseqEncoder):
    """Source tokens -> top-layer outputs, GNMT-shaped (bidirectional bottom layer, residuals from layer 3).
    Its checkpoint holds the source dictionary's md5 (`RemembersDictionary`)."""

    dictionary_file = "source dictionary (dict.SRC.txt)"
    dictionary_fix = ("was it trained on other data, or in the other language direction (-s/-t)? Point the data "
                      "folder at the one the model was trained on")

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        hidden = cfg.encoder_hidden_size
        self.padding_idx = dictionary.pad()
        self.dropout_module = FairseqDropout(cfg.dropout, module_name=type(self).__name__)  # --retain-dropout
        self.max_source_positions = cfg.max_source_positions
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, padding_idx=self.padding_idx)
        self.forward_rnn = build_hyperlstm(cfg, cfg.encoder_embed_dim, hidden)
        self.backward_rnn = build_hyperlstm(cfg, cfg.encoder_embed_dim, hidden)
        self.layers = nn.ModuleList(
            build_hyperlstm(cfg, 2 * hidden if layer == 2 else hidden, hidden)
            for layer in range(2, cfg.encoder_layers + 1)
        )
        self.output_dim = hidden

    def forward(self, src_tokens: Tensor, src_lengths: Optional[Tensor] = None, **unused) -> EncoderOut:
        tokens, lengths, order = left_align(src_tokens, self.padding_idx)
        steps = tokens.shape[1]
        x = self.dropout_module(self.embed_tokens(tokens).transpose(0, 1))
        forward_out, _ = self.forward_rnn(x, lengths=lengths)
        rev = reverse_index(lengths, steps)
        backward_out, _ = self.backward_rnn(_time_gather(x, rev), lengths=lengths)
        x = torch.cat([forward_out, _time_gather(backward_out, rev)], dim=-1)
        for number, rnn in enumerate(self.layers, start=2):
            out, _ = rnn(self.dropout_module(x), lengths=lengths)
            x = out + x if number >= RESIDUAL_FROM else out
        padding_mask = torch.arange(steps, device=x.device).unsqueeze(1) >= lengths.unsqueeze(0)
        return EncoderOut(x, padding_mask, order)

    def reorder_encoder_out(self, encoder_out: EncoderOut, new_order: Tensor) -> EncoderOut:
        return EncoderOut(
            encoder_out.outputs.index_select(1, new_order),
            encoder_out.padding_mask.index_select(1, new_order),
            encoder_out.order.index_select(0, new_order),
        )

    def max_positions(self) -> int:
        return self.max_source_positions


class HyperLSTMAttentionDecoder(RemembersDictionary, FairseqIncrementalDecoder):
    """Target prefix + encoder output -> next-token logits (B, T, V) and attention (B, T, S).

    Layer 1 reads [y_{t-1}; c_{t-1}] and gives the attention query; layers 2..L read [h^{l-1}_t; c_t];
    residual connections from layer 3; softmax over the top layer. Its checkpoint holds the target dictionary's
    md5 (`RemembersDictionary`).
    """

    dictionary_file = "target dictionary (dict.TGT.txt)"
    dictionary_fix = HyperLSTMEncoder.dictionary_fix

    def __init__(self, cfg, dictionary, encoder_dim: int):
        super().__init__(dictionary)
        hidden = cfg.decoder_hidden_size
        self.hidden_size = hidden
        self.encoder_dim = encoder_dim
        self.dropout_module = FairseqDropout(cfg.dropout, module_name=type(self).__name__)  # --retain-dropout
        self.max_target_positions = cfg.max_target_positions
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.decoder_embed_dim, padding_idx=dictionary.pad())
        self.bottom = build_hyperlstm(cfg, cfg.decoder_embed_dim + encoder_dim, hidden)  # run step by step
        self.attention = AdditiveAttention(hidden, encoder_dim, cfg.attention_dim)
        self.layers = nn.ModuleList(
            build_hyperlstm(cfg, hidden + encoder_dim, hidden) for _ in range(2, cfg.decoder_layers + 1)
        )
        self.output_projection = nn.Linear(hidden, len(dictionary))

    def upgrade_state_dict_named(self, state_dict, name: str) -> None:
        """Checkpoints from before layer 1 was a one-layer `HyperLSTM` held its cell at `bottom.*`."""
        old, new = f"{name}.bottom.", f"{name}.bottom.layers.0."
        for key in [k for k in state_dict if k.startswith(old) and not k.startswith(new)]:
            state_dict[new + key[len(old) :]] = state_dict.pop(key)

    # -- incremental state ------------------------------------------------------------------------

    def _initial(self, batch: int, like: Tensor) -> Tuple[HyperLSTMState, Tensor]:
        cells = [rnn.layers[0].zero_state(batch, like) for rnn in (self.bottom, *self.layers)]
        return stack_states(cells), like.new_zeros(batch, self.encoder_dim)

    def _cached(self, incremental_state) -> Optional[Tuple[HyperLSTMState, Tensor, Tensor]]:
        """(state, last context (B, N_enc), projected attention keys (S, B, A)), or None before step 1."""
        cached = self.get_incremental_state(incremental_state, STATE_KEY)
        if cached is None:
            return None
        state = HyperLSTMState(cached["h"], cached["c"], cached["h_hat"], cached["c_hat"])
        return state, cached["context"], cached["keys"]

    def _cache(self, incremental_state, state: HyperLSTMState, context: Tensor, keys: Tensor) -> None:
        fields: Dict[str, Optional[Tensor]] = dict(state._asdict())
        fields["context"] = context
        fields["keys"] = keys
        self.set_incremental_state(incremental_state, STATE_KEY, fields)

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        cached = self._cached(incremental_state)
        if cached is None:
            return
        state, context, keys = cached
        state = reorder_state(state, new_order)
        self._cache(incremental_state, state, context.index_select(0, new_order), keys.index_select(1, new_order))

    # -- forward ----------------------------------------------------------------------------------

    def extract_features(self, prev_output_tokens: Tensor, encoder_out: EncoderOut, incremental_state=None, **unused):
        cached = self._cached(incremental_state) if incremental_state is not None else None
        if cached is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        x = self.dropout_module(self.embed_tokens(prev_output_tokens).transpose(0, 1))
        if cached is not None:
            state, context, keys = cached
        else:
            state, context = self._initial(x.shape[1], x)
            keys = self.attention.project_keys(encoder_out.outputs)
        bottom = self._attend_step_by_step(x, one_layer(state, 0), context, keys, encoder_out)
        y, finals = bottom.outputs, [layer_state(bottom.state, 0)]
        for number, rnn in enumerate(self.layers, start=2):  # layers 2..L over the whole prefix at once
            inp = torch.cat([self.dropout_module(y), bottom.contexts], dim=-1)
            out, new = rnn(inp, one_layer(state, number - 1))
            finals.append(layer_state(new, 0))
            y = out + y if number >= RESIDUAL_FROM else out
        if incremental_state is not None:
            self._cache(incremental_state, stack_states(finals), bottom.contexts[-1], keys)
        features = self.dropout_module(y).transpose(0, 1)
        attn = bottom.weights  # (B, T, S) in left-aligned layout -> the caller's layout
        attn = torch.zeros_like(attn).scatter_(2, encoder_out.order.unsqueeze(1).expand_as(attn), attn)
        return features, {"attn": [attn]}

    def _attend_step_by_step(
        self, x: Tensor, state: HyperLSTMState, context: Tensor, keys: Tensor, encoder_out: EncoderOut
    ) -> BottomOut:
        """Layer 1 and the attention, one target step at a time (input feeding: step t reads c_{t-1})."""
        outputs: List[Tensor] = []
        contexts: List[Tensor] = []
        weights: List[Tensor] = []
        for t in range(x.shape[0]):
            h, state = self.bottom.step(torch.cat([x[t], context], dim=-1), state)
            context, attn = self.attention(h, keys, encoder_out.outputs, encoder_out.padding_mask)
            outputs.append(h)
            contexts.append(context)
            weights.append(attn)
        return BottomOut(torch.stack(outputs), torch.stack(contexts), torch.stack(weights, dim=1), state)

    def output_layer(self, features: Tensor, **kwargs) -> Tensor:
        return self.output_projection(features)

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        features, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        return self.output_layer(features), extra

    def max_positions(self) -> int:
        return self.max_target_positions


@register_model("hyperlstm_mt", dataclass=HyperLSTMTranslationConfig)
class HyperLSTMTranslationModel(ChecksCheckpointFit, FairseqEncoderDecoderModel):
    """`--arch hyperlstm_mt` and the Table 6 rows; baselines are the same model with `--no-hyper`."""

    @classmethod
    def build_model(cls, cfg: HyperLSTMTranslationConfig, task):
        check_config(cfg, RULES)
        encoder = HyperLSTMEncoder(cfg, task.source_dictionary)
        decoder = HyperLSTMAttentionDecoder(cfg, task.target_dictionary, encoder.output_dim)
        return cls(encoder, decoder)

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())


architectures.register("hyperlstm_mt", HyperLSTMTranslationConfig)
