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

Cell types (same code path): `--no-hyper` / `--layer-norm` select HyperLSTM, LN-HyperLSTM, LSTM, LN-LSTM.

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
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)
from fairseq.utils import safe_getattr
from torch import Tensor, nn

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM, HyperLSTMCell, HyperLSTMState
from hyperfairseq.modules.attention import AdditiveAttention
from hyperfairseq.modules.hyperlstm import layer_state, stack_states

from .state_dict_check import check_state_dict_fits

RESIDUAL_FROM = 3  # GNMT: residual connections start at the third layer (1-based), encoder and decoder
STATE_KEY = "hyperlstm_mt_state"


@dataclass
class HyperLSTMTranslationConfig(FairseqDataclass):
    encoder_embed_dim: int = field(default=1024, metadata={"help": "source embedding size (GNMT 1024)"})
    encoder_hidden_size: int = field(default=1024, metadata={"help": "N_h of every encoder cell, each direction"})
    encoder_layers: int = field(default=8, metadata={"help": "encoder layers, the bidirectional bottom one included"})
    decoder_embed_dim: int = field(default=1024, metadata={"help": "target embedding size (GNMT 1024)"})
    decoder_hidden_size: int = field(default=1024, metadata={"help": "N_h of every decoder cell"})
    decoder_layers: int = field(default=8, metadata={"help": "decoder layers"})
    attention_dim: int = field(default=1024, metadata={"help": "hidden size of the additive attention"})
    hyper_hidden_size: int = field(default=128, metadata={"help": "N_ĥ, hyper-cell units; Table 6 uses 128"})
    n_z: int = field(default=32, metadata={"help": "N_z, embedding size per gate; Table 6 uses 32"})
    no_hyper: bool = field(
        default=False, metadata={"help": "switch the hypernetwork off: LSTM / LN-LSTM cells, same code path"}
    )
    layer_norm: bool = field(default=True, metadata={"help": "layer norm per gate and on c (R8); Table 6: on"})
    dropout: float = field(default=0.2, metadata={"help": "drop prob. on every layer's input and before the softmax"})
    recurrent_dropout: float = field(default=0.0, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13"})
    forget_bias: float = field(default=1.0, metadata={"help": "added to the forget gate inside sigma (R2)"})
    ln_eps: float = field(default=1e-3, metadata={"help": "layer-norm epsilon (R8)"})
    max_source_positions: int = field(default=1024, metadata={"help": "longest source accepted, in tokens"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest target accepted, in tokens"})


class EncoderOut(NamedTuple):
    """outputs (S, B, N_enc) in left-aligned layout; padding_mask (S, B), True at padding;
    order (B, S): column j of the left-aligned layout came from source position order[b, j]."""

    outputs: Tensor
    padding_mask: Tensor
    order: Tensor


def _rnn(cfg, input_size: int, hidden_size: int, num_layers: int = 1) -> HyperLSTM:
    return HyperLSTM(
        input_size, hidden_size, num_layers, cfg.hyper_hidden_size, cfg.n_z, use_hyper=not cfg.no_hyper,
        layer_norm=cfg.layer_norm, recurrent_dropout=cfg.recurrent_dropout, forget_bias=cfg.forget_bias,
        ln_eps=cfg.ln_eps,
    )


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


class HyperLSTMEncoder(FairseqEncoder):
    """Source tokens -> top-layer outputs, GNMT-shaped (bidirectional bottom layer, residuals from layer 3)."""

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        if cfg.encoder_layers < 2:
            raise InputError(f"--encoder-layers must be at least 2 (bidirectional + one); got {cfg.encoder_layers}")
        hidden = cfg.encoder_hidden_size
        self.padding_idx = dictionary.pad()
        self.dropout = cfg.dropout
        self.max_source_positions = cfg.max_source_positions
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, padding_idx=self.padding_idx)
        self.forward_rnn = _rnn(cfg, cfg.encoder_embed_dim, hidden)
        self.backward_rnn = _rnn(cfg, cfg.encoder_embed_dim, hidden)
        self.layers = nn.ModuleList(
            _rnn(cfg, 2 * hidden if layer == 2 else hidden, hidden) for layer in range(2, cfg.encoder_layers + 1)
        )
        self.output_dim = hidden

    def forward(self, src_tokens: Tensor, src_lengths: Optional[Tensor] = None, **unused) -> EncoderOut:
        tokens, lengths, order = left_align(src_tokens, self.padding_idx)
        steps = tokens.shape[1]
        x = F.dropout(self.embed_tokens(tokens).transpose(0, 1), self.dropout, self.training)
        forward_out, _ = self.forward_rnn(x, lengths=lengths)
        rev = reverse_index(lengths, steps)
        backward_out, _ = self.backward_rnn(_time_gather(x, rev), lengths=lengths)
        x = torch.cat([forward_out, _time_gather(backward_out, rev)], dim=-1)
        for number, rnn in enumerate(self.layers, start=2):
            out, _ = rnn(F.dropout(x, self.dropout, self.training), lengths=lengths)
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


class HyperLSTMAttentionDecoder(FairseqIncrementalDecoder):
    """Target prefix + encoder output -> next-token logits (B, T, V) and attention (B, T, S).

    Layer 1 reads [y_{t-1}; c_{t-1}] and gives the attention query; layers 2..L read [h^{l-1}_t; c_t];
    residual connections from layer 3; softmax over the top layer.
    """

    def __init__(self, cfg, dictionary, encoder_dim: int):
        super().__init__(dictionary)
        if cfg.decoder_layers < 1:
            raise InputError(f"--decoder-layers must be a positive integer; got {cfg.decoder_layers}")
        hidden = cfg.decoder_hidden_size
        self.hidden_size = hidden
        self.encoder_dim = encoder_dim
        self.dropout = cfg.dropout
        self.max_target_positions = cfg.max_target_positions
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.decoder_embed_dim, padding_idx=dictionary.pad())
        self.bottom = HyperLSTMCell(
            cfg.decoder_embed_dim + encoder_dim, hidden, cfg.hyper_hidden_size, cfg.n_z, use_hyper=not cfg.no_hyper,
            layer_norm=cfg.layer_norm, recurrent_dropout=cfg.recurrent_dropout, forget_bias=cfg.forget_bias,
            ln_eps=cfg.ln_eps,
        )
        self.attention = AdditiveAttention(hidden, encoder_dim, cfg.attention_dim)
        self.layers = nn.ModuleList(_rnn(cfg, hidden + encoder_dim, hidden) for _ in range(2, cfg.decoder_layers + 1))
        self.output_projection = nn.Linear(hidden, len(dictionary))

    # -- incremental state ------------------------------------------------------------------------

    def _initial(self, batch: int, like: Tensor) -> Tuple[HyperLSTMState, Tensor]:
        cells = [self.bottom.zero_state(batch, like)] + [rnn.layers[0].zero_state(batch, like) for rnn in self.layers]
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
        state = HyperLSTMState(*(None if s is None else s.index_select(1, new_order) for s in state))
        self._cache(incremental_state, state, context.index_select(0, new_order), keys.index_select(1, new_order))

    # -- forward ----------------------------------------------------------------------------------

    def extract_features(self, prev_output_tokens: Tensor, encoder_out: EncoderOut, incremental_state=None, **unused):
        cached = self._cached(incremental_state) if incremental_state is not None else None
        if cached is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        x = F.dropout(self.embed_tokens(prev_output_tokens).transpose(0, 1), self.dropout, self.training)
        batch = x.shape[1]
        if cached is not None:
            state, context, keys = cached
        else:
            state, context = self._initial(batch, x)
            keys = self.attention.project_keys(encoder_out.outputs)

        bottom_state = layer_state(state, 0)
        outputs: List[Tensor] = []
        contexts: List[Tensor] = []
        weights: List[Tensor] = []
        for t in range(x.shape[0]):  # layer 1 and attention, step by step (input feeding)
            inp = torch.cat([x[t], context], dim=-1).unsqueeze(0)
            x_proj, hyper_x_proj = self.bottom.input_projection(inp)
            mask, hyper_mask = self.bottom.dropout_masks(1, batch, inp)
            bottom_state, _ = self.bottom.step(
                x_proj[0], None if hyper_x_proj is None else hyper_x_proj[0], bottom_state,
                None if mask is None else mask[0], None if hyper_mask is None else hyper_mask[0],
            )
            context, attn = self.attention(bottom_state.h, keys, encoder_out.outputs, encoder_out.padding_mask)
            outputs.append(bottom_state.h)
            contexts.append(context)
            weights.append(attn)
        y, ctx = torch.stack(outputs), torch.stack(contexts)
        finals = [bottom_state]
        for number, rnn in enumerate(self.layers, start=2):  # layers 2..L over the whole prefix at once
            inp = torch.cat([F.dropout(y, self.dropout, self.training), ctx], dim=-1)
            one = HyperLSTMState(*(None if s is None else s[number - 1 : number] for s in state))
            out, new = rnn(inp, one)
            finals.append(layer_state(new, 0))
            y = out + y if number >= RESIDUAL_FROM else out
        if incremental_state is not None:
            self._cache(incremental_state, stack_states(finals), context, keys)
        features = F.dropout(y, self.dropout, self.training).transpose(0, 1)
        attn = torch.stack(weights, dim=1)  # (B, T, S) in left-aligned layout -> the caller's layout
        attn = torch.zeros_like(attn).scatter_(2, encoder_out.order.unsqueeze(1).expand_as(attn), attn)
        return features, {"attn": [attn]}

    def output_layer(self, features: Tensor, **kwargs) -> Tensor:
        return self.output_projection(features)

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        features, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        return self.output_layer(features), extra

    def max_positions(self) -> int:
        return self.max_target_positions


@register_model("hyperlstm_mt", dataclass=HyperLSTMTranslationConfig)
class HyperLSTMTranslationModel(FairseqEncoderDecoderModel):
    """`--arch hyperlstm_mt` and the Table 6 rows; baselines are the same model with `--no-hyper`."""

    @classmethod
    def build_model(cls, cfg: HyperLSTMTranslationConfig, task):
        _check_config(cfg)
        encoder = HyperLSTMEncoder(cfg, task.source_dictionary)
        decoder = HyperLSTMAttentionDecoder(cfg, task.target_dictionary, encoder.output_dim)
        return cls(encoder, decoder)

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict:
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


def _check_config(cfg) -> None:
    positive = ["encoder_embed_dim", "encoder_hidden_size", "decoder_embed_dim", "decoder_hidden_size", "attention_dim"]
    positive += [] if cfg.no_hyper else ["hyper_hidden_size", "n_z"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer; got {getattr(cfg, name)}")
    for name in ("dropout", "recurrent_dropout"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise InputError(f"--{name.replace('_', '-')} is a drop probability in [0, 1); got {getattr(cfg, name)}")


# -- architectures ---------------------------------------------------------------------------------


def _set(cfg, **defaults):
    for key, value in defaults.items():
        setattr(cfg, key, safe_getattr(cfg, key, value))


def base_architecture(cfg):
    """The dataclass defaults (what `--arch hyperlstm_mt` gets): Table 6's GNMT WPM-32K HyperLSTM (= `hyperlstm_wmt`)."""
    _set(
        cfg, encoder_embed_dim=1024, encoder_hidden_size=1024, encoder_layers=8, decoder_embed_dim=1024,
        decoder_hidden_size=1024, decoder_layers=8, attention_dim=1024, hyper_hidden_size=128, n_z=32,
        no_hyper=False, layer_norm=True, dropout=0.2, recurrent_dropout=0.0, forget_bias=1.0, ln_eps=1e-3,
        max_source_positions=1024, max_target_positions=1024,
    )


@register_model_architecture("hyperlstm_mt", "hyperlstm_wmt")
def hyperlstm_wmt(cfg):
    """Table 6, GNMT WPM-32K, HyperLSTM (LN-HyperLSTM cells, 8 + 8 layers of 1024, N_ĥ 128, N_z 32).

    With a joined 32,004-entry dictionary (32k pieces + 4 specials): 312,251,140 parameters.
    """
    base_architecture(cfg)


@register_model_architecture("hyperlstm_mt", "lstm_wmt")
def lstm_wmt(cfg):
    """Table 6, GNMT WPM-32K, LSTM (plain LSTM cells, 8 + 8 layers of 1024). 32,004 entries: 280,872,196."""
    _set(cfg, no_hyper=True, layer_norm=False)
    base_architecture(cfg)


def _small(cfg):
    _set(
        cfg, encoder_embed_dim=256, encoder_hidden_size=256, encoder_layers=2, decoder_embed_dim=256,
        decoder_hidden_size=256, decoder_layers=2, attention_dim=256, hyper_hidden_size=64, n_z=16,
    )
    base_architecture(cfg)


@register_model_architecture("hyperlstm_mt", "hyperlstm_mt_small")
def hyperlstm_mt_small(cfg):
    """LN-HyperLSTM, 2 + 2 layers of 256, N_ĥ 64, N_z 16 (modest data, tests). 8,004 entries: 10,957,380."""
    _small(cfg)


@register_model_architecture("hyperlstm_mt", "lstm_mt_small")
def lstm_mt_small(cfg):
    """LSTM, 2 + 2 layers of 256 (the small baseline). 8,004 entries: 9,699,652."""
    _set(cfg, no_hyper=True, layer_norm=False)
    _small(cfg)
