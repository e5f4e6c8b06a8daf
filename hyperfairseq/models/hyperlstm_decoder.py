"""Incremental HyperLSTM decoder over a token vocabulary (shared by the language models).

The recurrence is `hyperfairseq.modules.HyperLSTM`; this file only adds what a fairseq decoder needs:
token inputs (one-hot by default, R10, or a learned embedding), input and output dropout
(paper-spec §3.3–3.4), the output softmax layer, and the recurrent state in fairseq's incremental
state so that fairseq's sequence generator can sample one token at a time.
"""

from typing import Dict, Optional

import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from fairseq.modules import FairseqDropout
from torch import Tensor, nn

from hyperfairseq.modules import HyperLSTM, HyperLSTMState, detach_state, reorder_state

from .carried_ranks import rows_of_this_rank
from .state_dict_check import RemembersDictionary

STATE_KEY = "hyperlstm_state"


def state_to_dict(state: HyperLSTMState) -> Dict[str, Optional[Tensor]]:
    return dict(state._asdict())


def state_from_dict(fields: Dict[str, Optional[Tensor]]) -> HyperLSTMState:
    return HyperLSTMState(**fields)


class HyperLSTMDecoder(RemembersDictionary, FairseqIncrementalDecoder):
    """Tokens (B, T) -> next-token logits (B, T, V) through a multi-layer HyperLSTM.

    Inputs are one-hot vectors over the dictionary's symbols (`input_mode="one_hot"`, the paper's
    setting, R10) or a learned embedding (`input_mode="embedding"`). Input dropout is applied to that
    input vector and output dropout to the top hidden state before the softmax layer.
    Right-padded rows (fairseq's language_modeling batches) are run with `lengths`, so padding never
    reaches the state.

    Carried state (truncated BPTT, `--task char_lm`): a batch whose net_input holds
    `carry={"stream": name, "reset": bool}` starts from the state the previous batch of that stream
    ended in (zeros when `reset`), and leaves its own final state, detached, for the next one. One state
    is kept per stream name, so validation never disturbs training; the states are saved in
    checkpoints (`get_extra_state`) so that a resumed run continues its streams exactly.
    """

    dictionary_file = "dict.txt"  # its md5 in the checkpoint (`RemembersDictionary`)

    supports_carry = True

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
        # fairseq's dropout modules, so that --retain-dropout keeps them on at inference (module name: this class)
        self.dropout_in = FairseqDropout(dropout_in, module_name=type(self).__name__)
        self.dropout_out = FairseqDropout(dropout_out, module_name=type(self).__name__)
        self.output_projection = nn.Linear(rnn.hidden_size, num_symbols)
        self.carried: Dict[str, HyperLSTMState] = {}
        self.carried_ranks = 1  # the data-parallel ranks whose rows `carried` holds (fairseq_patches §15 sets it)

    def embed(self, tokens: Tensor) -> Tensor:
        """(B, T) token ids -> (T, B, N_x) inputs, input dropout applied."""
        tokens = tokens.t()
        if self.embed_tokens is None:
            x = F.one_hot(tokens, self.num_symbols).to(self.output_projection.weight.dtype)
        else:
            x = self.embed_tokens(tokens)
        return self.dropout_in(x)

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
        x = self.dropout_out(x)
        return x.transpose(0, 1), {"attn": None, "state": new_state}

    def output_layer(self, features: Tensor, **kwargs) -> Tensor:
        return self.output_projection(features)

    def forward(
        self, prev_output_tokens: Tensor, src_lengths=None, incremental_state=None, state=None, carry=None, **kwargs
    ):
        if carry is not None and state is None:
            state = self.carried_state(carry, prev_output_tokens.shape[0])
        features, extra = self.extract_features(prev_output_tokens, incremental_state, state)
        if carry is not None:
            self.carried[carry["stream"]] = detach_state(extra["state"])
        return self.output_layer(features), extra

    def carried_state(self, carry, batch: int) -> Optional[HyperLSTMState]:
        """The state the previous segment of `carry["stream"]` ended in; None (zeros) when reset."""
        if carry["reset"]:
            return None
        state = self.carried.get(carry["stream"])
        if state is None or state.h.shape[1] != batch:
            raise RuntimeError(
                f"stream '{carry['stream']}' continues a segment but no state of batch {batch} was carried; "
                "a stream must start with a reset segment"
            )
        return state

    def get_extra_state(self):
        """Saved in checkpoints: the carried states {stream: {field: tensor}} (with the rows of `ranks` data
        parallel ranks: `carried_ranks`) and the dictionary's md5."""
        carried = {
            name: {k: v for k, v in state._asdict().items() if v is not None} for name, state in self.carried.items()
        }
        return {**super().get_extra_state(), "carried": carried, "ranks": self.carried_ranks}

    def set_extra_state(self, extra) -> None:
        """None (a checkpoint without the extra state, e.g. averaged): nothing carried, no dictionary check.
        Another dictionary is refused before any tensor shape is compared, which would blame the architecture
        (one-hot inputs make the dictionary's size part of every input layer)."""
        super().set_extra_state(extra)
        extra = extra or {}
        carried = {
            name: HyperLSTMState(**{k: fields.get(k) for k in HyperLSTMState._fields})
            for name, fields in extra.get("carried", {}).items()
        }
        self.carried = rows_of_this_rank(carried, extra.get("ranks", 1))

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        cached = self.get_incremental_state(incremental_state, STATE_KEY)
        if cached is not None:
            reordered = reorder_state(state_from_dict(cached), new_order)
            self.set_incremental_state(incremental_state, STATE_KEY, state_to_dict(reordered))

    def max_positions(self) -> int:
        return int(1e6)  # a recurrence has no length limit
