"""Recurrent state of the HyperLSTM and the helpers every caller shares.

One documented state for every use (paper-spec §2.5, design.md): the main LSTM's (h, c) and the hyper
cell's (ĥ, ĉ), each stacked over layers as (L, B, size); the hyper fields are None when the
hypernetwork is off, so baselines return the same structure and callers never branch on the cell type.
TBPTT carry-over, incremental decoding, beam search and sampling all use these types and helpers.
"""

from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor


class HyperLSTMState(NamedTuple):
    """State of a (multi-layer) HyperLSTM: each field (L, B, size); `h_hat`, `c_hat` (size N_ĥ) are None
    without the hypernetwork."""

    h: Tensor
    c: Tensor
    h_hat: Optional[Tensor] = None
    c_hat: Optional[Tensor] = None


class CellState(NamedTuple):
    """One layer's state, each (B, size); hyper fields None without the hypernetwork."""

    h: Tensor
    c: Tensor
    h_hat: Optional[Tensor] = None
    c_hat: Optional[Tensor] = None


class StepInternals(NamedTuple):
    """What one step of a layer exposes for the analyses, each (B, ...): d_h, d_x, beta (B, 4·N_h) are
    None without the hypernetwork; c the carried cell state; g the candidate tanh(g_t) after dropout."""

    d_h: Optional[Tensor]
    d_x: Optional[Tensor]
    beta: Optional[Tensor]
    c: Tensor
    g: Tensor


class HyperLSTMInternals(NamedTuple):
    """Per-step internals for the paper's analyses (Figures 4, 5, 7), each (L, T, B, ...).

    d_h, d_x: (L, T, B, 4, N_h) weight scalings (Eq. 12); beta: (L, T, B, 4, N_h) dynamic bias W_bz z_b
    (Eq. 12, without b_0); all three None without the hypernetwork. c: (L, T, B, N_h) the carried,
    un-normalised cell state; g: (L, T, B, N_h) the candidate tanh(g_t) after recurrent dropout.
    """

    d_h: Optional[Tensor]
    d_x: Optional[Tensor]
    beta: Optional[Tensor]
    c: Tensor
    g: Tensor


def _stack_or_none(values: Sequence[Optional[Tensor]]) -> Optional[Tensor]:
    return None if values[0] is None else torch.stack(list(values))


def layer_state(state: HyperLSTMState, layer: int) -> CellState:
    """One layer's slice of a stacked state."""
    return CellState(*(None if s is None else s[layer] for s in state))


def stack_states(states: List[CellState]) -> HyperLSTMState:
    """Per-layer states -> one `HyperLSTMState` with (L, B, size) fields."""
    return HyperLSTMState(*(_stack_or_none(field) for field in zip(*states)))


def stack_steps(steps: List[StepInternals]) -> StepInternals:
    """Per-step internals of one layer -> (T, B, ...) fields."""
    return StepInternals(*(_stack_or_none(field) for field in zip(*steps)))


def stack_internals(per_layer: List[StepInternals]) -> HyperLSTMInternals:
    """Layers' (T, B, ...) internals -> (L, T, B, ...), the gate axis split out of d_h, d_x, β."""
    fields = []
    for name, values in zip(StepInternals._fields, zip(*per_layer)):
        stacked = _stack_or_none(values)
        if stacked is not None and name in ("d_h", "d_x", "beta"):
            stacked = stacked.unflatten(-1, (4, -1))
        fields.append(stacked)
    return HyperLSTMInternals(*fields)


def where_state(keep: Tensor, new: CellState, old: CellState) -> CellState:
    """Rows where `keep` (B, 1) is True take the new state; padded rows keep the old one."""
    return CellState(*(None if n is None else torch.where(keep, n, o) for n, o in zip(new, old)))


def reorder_state(state: HyperLSTMState, new_order: Tensor) -> HyperLSTMState:
    """Index-select the batch axis (dim 1) of every field: after a beam step or a batch split."""
    return HyperLSTMState(*(None if s is None else s.index_select(1, new_order) for s in state))


def detach_state(state: HyperLSTMState) -> HyperLSTMState:
    """The same state cut from the autograd graph (carried state of truncated BPTT)."""
    return HyperLSTMState(*(None if s is None else s.detach() for s in state))
