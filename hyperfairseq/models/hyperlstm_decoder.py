"""Incremental HyperLSTM decoder over a token vocabulary (shared by the language models).

The recurrence is `hyperfairseq.modules.HyperLSTM`; this file only adds what a fairseq decoder needs:
token inputs (one-hot by default, R10, or a learned embedding), input and output dropout
(paper-spec §3.3–3.4), the output softmax layer, and the recurrent state in fairseq's incremental
state so that fairseq's sequence generator can sample one token at a time.
"""

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor, nn

from hyperfairseq.modules import HyperLSTM, HyperLSTMState

STATE_KEY = "hyperlstm_state"


def state_to_dict(state: HyperLSTMState) -> Dict[str, Optional[Tensor]]:
    return dict(state._asdict())


def state_from_dict(fields: Dict[str, Optional[Tensor]]) -> HyperLSTMState:
    return HyperLSTMState(**fields)


def reorder_state(state: HyperLSTMState, new_order: Tensor) -> HyperLSTMState:
    """Index-select the batch axis (dim 1) of every field: after a beam step or a batch split."""
    return HyperLSTMState(*(None if s is None else s.index_select(1, new_order) for s in state))


class HyperLSTMDecoder(FairseqIncrementalDecoder):
    """Tokens (B, T) -> next-token logits (B, T, V) through a multi-layer HyperLSTM.

    Inputs are one-hot vectors over the dictionary's symbols (`input_mode="one_hot"`, the paper's
    setting, R10) or a learned embedding (`input_mode="embedding"`). Input dropout is applied to that
    input vector and output dropout to the top hidden state before the softmax layer.
    Right-padded rows (fairseq's language_modeling batches) are run with `lengths`, so padding never
    reaches the state.
    """

    def __init__(
        self,
        dictionary,
        num_symbols: int,
        rnn: HyperLSTM,
        embed_tokens: Optional[nn.Embedding],
        dropout_in: float,
        dropout_out: float,
    ):
        super().__init__(dictionary)
        self.num_symbols = num_symbols
        self.padding_idx = dictionary.pad() if dictionary is not None else None
        self.embed_tokens = embed_tokens
        self.rnn = rnn
        self.dropout_in = dropout_in
        self.dropout_out = dropout_out
        self.output_projection = nn.Linear(rnn.hidden_size, num_symbols)

    def embed(self, tokens: Tensor) -> Tensor:
        """(B, T) token ids -> (T, B, N_x) inputs, input dropout applied."""
        tokens = tokens.t()
        if self.embed_tokens is None:
            x = F.one_hot(tokens, self.num_symbols).to(self.output_projection.weight.dtype)
        else:
            x = self.embed_tokens(tokens)
        return F.dropout(x, self.dropout_in, self.training)

    def lengths_of(self, tokens: Tensor) -> Optional[Tensor]:
        """Lengths of right-padded rows, or None when no row is padded."""
        if self.padding_idx is None:
            return None
        pad = tokens.eq(self.padding_idx)
        if not bool(pad.any()):
            return None
        return tokens.shape[1] - pad.sum(1)

    def extract_features(
        self,
        prev_output_tokens: Tensor,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        state: Optional[HyperLSTMState] = None,
        **unused,
    ):
        if incremental_state is not None:
            cached = self.get_incremental_state(incremental_state, STATE_KEY)
            if cached is not None:
                state = state_from_dict(cached)
                prev_output_tokens = prev_output_tokens[:, -1:]
        lengths = None if incremental_state is not None else self.lengths_of(prev_output_tokens)
        x = self.embed(prev_output_tokens)
        x, new_state = self.rnn(x, state, lengths=lengths)
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, STATE_KEY, state_to_dict(new_state))
        x = F.dropout(x, self.dropout_out, self.training)
        return x.transpose(0, 1), {"attn": None, "state": new_state}

    def output_layer(self, features: Tensor, **kwargs) -> Tensor:
        return self.output_projection(features)

    def forward(self, prev_output_tokens: Tensor, src_lengths=None, incremental_state=None, state=None, **kwargs):
        features, extra = self.extract_features(prev_output_tokens, incremental_state, state)
        return self.output_layer(features), extra

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        cached = self.get_incremental_state(incremental_state, STATE_KEY)
        if cached is not None:
            reordered = reorder_state(state_from_dict(cached), new_order)
            self.set_incremental_state(incremental_state, STATE_KEY, state_to_dict(reordered))

    def max_positions(self) -> int:
        return int(1e6)  # a recurrence has no length limit
