"""HyperLSTM: a small LSTM that generates, at every step, the weight scalings of a large LSTM.

Reference implementation, equation by equation, of the dynamic hypernetwork of Ha, Dai & Le,
"HyperNetworks" (arXiv 1609.09106v4), §3.2 and Appendix A.2.2–A.2.3 (Eq. 10–13); the matching
specification is paper-spec §2.3–§2.5. LSTM and LN-LSTM baselines are the same module with the
hypernetwork switched off (`use_hyper=False`). Plain PyTorch: nothing here imports fairseq.

Symbols (used in shapes): T steps, B batch, N_x input size, N_h `hidden_size`,
N_ĥ `hyper_hidden_size`, N_z `n_z`, L `num_layers`.

Decisions where the paper is ambiguous (paper-spec §6):
* R1  the z projections read the hyper cell's output of the *current* step, ĥ_t.
* R2  forget bias +1.0 inside σ (after layer norm) in the main cell and the hyper cell.
* R3  one dynamic bias β per gate plus a static bias b_0; hyper models keep b_0 even with layer norm,
      the LN-LSTM baseline (and the LN hyper cell) drop it, as the paper's parameter counts imply.
* R4/R5 per-gate-block orthogonal W_h and W_x (see `init.py`).
* R6  recurrent dropout on tanh(g_t) only, a fresh inverted-dropout mask every step, training only.
* R8  layer norm per gate, eps 1e-3, gain 1 / shift 0; LN(c_t) only on the way to h_t.
* R9  the hyper cell reads concat(x_t, h_{t-1}) (reference-code order).
Gates are stored in nn.LSTM's order (i, f, g, o) so weights copy across in parity tests; the reference
code's order (i, g, f, o) differs only in naming, since every gate block is initialised alike.
"""

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fused_layer import fast_path_applies, fused_layer
from .init import d_projection_, orthogonal_gates_, z_projection_
from .one_step import drop_plan
from .state import (
    CellState,
    HyperLSTMState,
    StepInternals,
    layer_state,
    stack_internals,
    stack_states,
    stack_steps,
    where_state,
)
from .state import HyperLSTMInternals as HyperLSTMInternals  # re-export: hyperfairseq.analysis imports it from here

NUM_GATES = 4
GATES = ("i", "f", "g", "o")  # storage order of the 4·N_h rows, as nn.LSTM


class GateLayerNorm(nn.Module):
    """Layer norm applied to each gate's N_h pre-activations separately (R8).

    Input (B, 4·N_h); statistics per gate; gain `weight` and shift `bias` of shape (4, N_h).
    """

    def __init__(self, hidden_size: int, eps: float = 1e-3):
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(NUM_GATES, hidden_size))
        self.bias = nn.Parameter(torch.zeros(NUM_GATES, hidden_size))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)  # gain 1, shift 0 (R8)
        nn.init.zeros_(self.bias)

    def forward(self, pre: Tensor) -> Tensor:
        gates = pre.view(*pre.shape[:-1], NUM_GATES, self.hidden_size)
        normed = F.layer_norm(gates, (self.hidden_size,), eps=self.eps)
        return (normed * self.weight + self.bias).flatten(-2)


def lstm_update(
    pre: Tensor, c: Tensor, forget_bias: float, ln_cell: nn.Module, mask: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor]:
    """The LSTM update shared by every cell (main, hyper, baselines), Eq. 13.

    pre: (B, 4·N_h) gate pre-activations in order i, f, g, o (already layer-normalised if LN).
    Returns (h_t, c_t, g) where g is the candidate tanh(g_t) after recurrent dropout.
    """
    i, f, g, o = pre.chunk(NUM_GATES, dim=-1)
    g = torch.tanh(g)
    if mask is not None:
        g = g * mask  # Eq. 13: recurrent dropout without memory loss, on the candidate only (R6)
    c = torch.sigmoid(f + forget_bias) * c + torch.sigmoid(i) * g  # Eq. 13, forget bias R2
    h = torch.sigmoid(o) * torch.tanh(ln_cell(c))  # Eq. 13: LN on the output path only (R8)
    return h, c, g


class HyperNetwork(nn.Module):
    """The hyper cell (Eq. 10) and the 12 projections ĥ -> z -> (d_h, d_x, β) (Eq. 11–12).

    Attributes:
        cell: the hyper LSTM cell, N_ĥ units, input concat(x_t, h_{t-1}) (R9); an `HyperLSTMCell`
            with the hypernetwork off, layer-normalised (and without bias) in LN models.
        weight_z: (12·N_z, N_ĥ) rows [z_h, z_x, z_b] x gates (i, f, g, o) x N_z (Eq. 11).
        bias_z: (8·N_z,) the biases of z_h and z_x; z_b has none.
        weight_d: (3, 4, N_z, N_h) the maps z_h -> d_h, z_x -> d_x, z_b -> β, per gate (Eq. 12).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        hyper_hidden_size: int,
        n_z: int,
        layer_norm: bool,
        recurrent_dropout: float,
        forget_bias: float,
        ln_eps: float,
    ):
        super().__init__()
        self.n_z = n_z
        self.hidden_size = hidden_size
        self.cell = HyperLSTMCell(
            input_size + hidden_size,
            hyper_hidden_size,
            use_hyper=False,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            forget_bias=forget_bias,
            ln_eps=ln_eps,
        )
        self.weight_z = nn.Parameter(torch.empty(3 * NUM_GATES * n_z, hyper_hidden_size))
        self.bias_z = nn.Parameter(torch.empty(2 * NUM_GATES * n_z))
        self.weight_d = nn.Parameter(torch.empty(3, NUM_GATES, n_z, hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        z_projection_(self.weight_z, self.bias_z, self.n_z)
        d_projection_(self.weight_d, self.n_z)

    def scalings(self, h_hat: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """ĥ_t (B, N_ĥ) -> d_h, d_x, β, each (B, 4·N_h) in gate order i, f, g, o."""
        z = F.linear(h_hat, self.weight_z)  # Eq. 11: z_h, z_x, z_b from the current ĥ_t (R1)
        n_hx = self.bias_z.numel()
        z = torch.cat([z[:, :n_hx] + self.bias_z, z[:, n_hx:]], dim=1)
        z = z.view(-1, 3 * NUM_GATES, self.n_z)
        d = torch.einsum("bkz,kzn->bkn", z, self.weight_d.flatten(0, 1))  # Eq. 12
        d_h, d_x, beta = d.reshape(-1, 3, NUM_GATES * self.hidden_size).unbind(1)
        return d_h, d_x, beta


class HyperLSTMCell(nn.Module):
    r"""One HyperLSTM layer (Eq. 10–13); an LSTM / LN-LSTM cell when `use_hyper=False`.

    .. math::
        \hat{x}_t = [x_t; h_{t-1}],\quad (\hat h_t, \hat c_t) = \mathrm{LSTM}_{\hat N}(\hat x_t,
            (\hat h_{t-1}, \hat c_{t-1}))                                            \quad (10)
        z^y_h = W^y_{\hat h h}\hat h_t + b^y_{\hat h h},\; z^y_x = W^y_{\hat h x}\hat h_t + b^y_{\hat h x},
            \; z^y_b = W^y_{\hat h b}\hat h_t                                        \quad (11)
        y_t = \mathrm{LN}\big(d^y_h \odot W^y_h h_{t-1} + d^y_x \odot W^y_x x_t
            + W^y_{bz} z^y_b + b^y_0\big),\quad d^y_h = W^y_{hz} z^y_h,\; d^y_x = W^y_{xz} z^y_x \quad (12)
        c_t = \sigma(f_t + 1) \odot c_{t-1} + \sigma(i_t) \odot \mathrm{drop}(\tanh g_t),\;
            h_t = \sigma(o_t) \odot \tanh(\mathrm{LN}(c_t))                         \quad (13)

    Args:
        input_size: N_x.
        hidden_size: N_h, main LSTM units (Table 3: 1000).
        hyper_hidden_size: N_ĥ, hyper-cell units (Table 3: 128). Ignored when `use_hyper` is False.
        n_z: N_z, embedding ("signal") size per gate and path (Table 3: 4).
        use_hyper: generate the weight scalings with a hyper cell; False gives an LSTM / LN-LSTM.
        layer_norm: per-gate LN and LN(c) in the main and the hyper cell (R8).
        recurrent_dropout: drop probability of the main cell's candidate (R6; the paper's keep 0.9 is 0.1).
        hyper_recurrent_dropout: the same inside the hyper cell (off except enwik8-2048, R7).
        forget_bias: added to the forget pre-activation inside σ (R2).
        ln_eps: layer-norm epsilon (R8).

    Attributes:
        weight_ih: (4·N_h, N_x) W_x, gate blocks i, f, g, o.  weight_hh: (4·N_h, N_h) W_h.
        bias: (4·N_h,) b_0, or None in the LN-LSTM baseline (R3).
        ln_gates, ln_cell: `GateLayerNorm` / `nn.LayerNorm`, or identities without LN.
        hyper: the `HyperNetwork`, or None without the hypernetwork.

    Note:
        Initialisation is the paper's (A.2.3, paper-spec §2.4): see `init.py`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        hyper_hidden_size: int = 128,
        n_z: int = 4,
        use_hyper: bool = True,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        hyper_recurrent_dropout: float = 0.0,
        forget_bias: float = 1.0,
        ln_eps: float = 1e-3,
    ):
        super().__init__()
        _check_sizes(input_size=input_size, hidden_size=hidden_size)
        if use_hyper:
            _check_sizes(hyper_hidden_size=hyper_hidden_size, n_z=n_z)
        for name, p in (("recurrent_dropout", recurrent_dropout), ("hyper_recurrent_dropout", hyper_recurrent_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} is a drop probability in [0, 1); got {p}")
        if not (math.isfinite(forget_bias) and 0.0 < ln_eps < math.inf):
            raise ValueError(f"forget_bias must be finite and ln_eps > 0 (R2, R8); got {forget_bias} and {ln_eps}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.use_hyper = use_hyper
        self.layer_norm = layer_norm
        self.recurrent_dropout = recurrent_dropout
        self.dropout_at_inference = False  # set by HyperLSTM.retain_dropout_ (fairseq's --retain-dropout)
        self.forget_bias = forget_bias
        gates = NUM_GATES * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        keeps_bias = use_hyper or not layer_norm  # R3
        self.bias = nn.Parameter(torch.empty(gates)) if keeps_bias else None
        self.ln_gates = GateLayerNorm(hidden_size, ln_eps) if layer_norm else nn.Identity()
        self.ln_cell = nn.LayerNorm(hidden_size, eps=ln_eps) if layer_norm else nn.Identity()
        self.hyper = (
            HyperNetwork(
                input_size, hidden_size, hyper_hidden_size, n_z, layer_norm,
                hyper_recurrent_dropout, forget_bias, ln_eps,
            )
            if use_hyper
            else None
        )
        self.reset_parameters()

    def train(self, mode: bool = True) -> "HyperLSTMCell":
        drop_plan(self)  # one-step decoding re-derives its weights after a mode switch (one_step.py)
        return super().train(mode)

    @property
    def drops(self) -> bool:
        """Whether the recurrent-dropout masks are drawn: in training, and at inference when retained."""
        return self.training or self.dropout_at_inference

    @property
    def hyper_hidden_size(self) -> Optional[int]:
        return self.hyper.cell.hidden_size if self.hyper is not None else None

    def reset_parameters(self) -> None:
        orthogonal_gates_(self.weight_ih)
        orthogonal_gates_(self.weight_hh)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.layer_norm:
            self.ln_gates.reset_parameters()
            self.ln_cell.reset_parameters()
        if self.hyper is not None:
            self.hyper.cell.reset_parameters()
            self.hyper.reset_parameters()

    # -- the pieces of one step ------------------------------------------------------------------

    def input_projection(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """W_x x_t for all steps at once, and the x-part of the hyper cell's input projection.

        x: (T, B, N_x) -> ((T, B, 4·N_h), (T, B, 4·N_ĥ) or None).
        """
        x_proj = F.linear(x, self.weight_ih)
        if self.hyper is None:
            return x_proj, None
        hyper_x_proj = F.linear(x, self.hyper.cell.weight_ih[:, : self.input_size])  # x̂ = [x; h] (R9)
        return x_proj, hyper_x_proj

    def dropout_masks(self, steps: int, batch: int, like: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Inverted-dropout masks for the candidates, one fresh mask per step (R6): (T, B, size) or None."""
        main = _masks(steps, batch, self.hidden_size, self.recurrent_dropout, self.drops, like)
        hyper = None
        if self.hyper is not None:
            cell = self.hyper.cell
            hyper = _masks(steps, batch, cell.hidden_size, cell.recurrent_dropout, self.drops, like)
        return main, hyper

    def step(
        self,
        x_proj: Tensor,
        hyper_x_proj: Optional[Tensor],
        state: CellState,
        mask: Optional[Tensor] = None,
        hyper_mask: Optional[Tensor] = None,
    ) -> Tuple[CellState, StepInternals]:
        """One time step from precomputed input projections (see `input_projection`)."""
        hh = F.linear(state.h, self.weight_hh)  # W_h h_{t-1}
        h_hat = c_hat = d_h = d_x = beta = None
        if self.hyper is None:
            pre = x_proj + hh
        else:
            cell = self.hyper.cell
            hyper_pre = (
                hyper_x_proj
                + F.linear(state.h, cell.weight_ih[:, self.input_size :])  # Eq. 10, x̂ = [x_t; h_{t-1}]
                + F.linear(state.h_hat, cell.weight_hh)
            )
            h_hat, c_hat, _ = cell.update(hyper_pre, state.c_hat, hyper_mask)  # Eq. 10
            d_h, d_x, beta = self.hyper.scalings(h_hat)  # Eq. 11-12, from ĥ_t (R1)
            pre = d_x * x_proj + d_h * hh + beta  # Eq. 12
        h, c, g = self.update(pre, state.c, mask)
        return CellState(h, c, h_hat, c_hat), StepInternals(d_h, d_x, beta, c, g)

    def update(self, pre: Tensor, c: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """Add b_0, layer-normalise per gate, and apply the LSTM update (Eq. 12-13)."""
        if self.bias is not None:
            pre = pre + self.bias
        return lstm_update(self.ln_gates(pre), c, self.forget_bias, self.ln_cell, mask)

    def zero_state(self, batch: int, like: Tensor) -> CellState:
        zeros = lambda n: like.new_zeros(batch, n)  # noqa: E731
        if self.hyper is None:
            return CellState(zeros(self.hidden_size), zeros(self.hidden_size), None, None)
        n_hat = self.hyper.cell.hidden_size
        return CellState(zeros(self.hidden_size), zeros(self.hidden_size), zeros(n_hat), zeros(n_hat))

    def forward(self, x: Tensor, state: Optional[CellState] = None) -> CellState:
        """One step from raw input x (B, N_x), nn.LSTMCell-style; returns the new state."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"HyperLSTMCell expects x of shape (B, {self.input_size}); got {tuple(x.shape)}")
        if state is None:
            state = self.zero_state(x.shape[0], x)
        x_proj, hyper_x_proj = self.input_projection(x.unsqueeze(0))
        mask, hyper_mask = self.dropout_masks(1, x.shape[0], x)
        new, _ = self.step(
            x_proj[0], None if hyper_x_proj is None else hyper_x_proj[0], state,
            None if mask is None else mask[0], None if hyper_mask is None else hyper_mask[0],
        )
        return new


class HyperLSTM(nn.Module):
    r"""Multi-layer HyperLSTM with an nn.LSTM-like API (time-major); LSTM / LN-LSTM with `use_hyper=False`.

    Args:
        input_size, hidden_size, hyper_hidden_size, n_z, use_hyper, layer_norm, recurrent_dropout,
        hyper_recurrent_dropout, forget_bias, ln_eps: as `HyperLSTMCell`, shared by every layer.
        num_layers: stacked layers, each feeding its h to the next (no skip connections, as the
            paper's parameter counts imply).
        dropout: drop probability on the outputs of every layer but the last (like nn.LSTM).
        fast: run layers (hyper and baseline alike) through `fused_layer.fused_layer` (same maths, fused
            kernels, hand-written backward) where a fused implementation applies (CPU: the C++ kernels;
            CUDA: the Triton kernels; float32/bf16/fp16; no internals); `run_layer`, the reference,
            otherwise. Set `fast=False` (or the attribute) to force the reference, e.g. for second-order
            gradients (`create_graph=True`), which the fused backward refuses by name.

    Inputs: input, state=None, lengths=None, return_internals=False
        input: (T, B, N_x).
        state: `HyperLSTMState` with fields (L, B, size); zeros when omitted.
        lengths: (B,) int tensor for right-padded batches; after a sequence's end its state stops
            updating and its outputs are zero.
        return_internals: also return a `HyperLSTMInternals` of per-step tensors.

    Outputs: output, state[, internals]
        output: (T, B, N_h) the top layer's h_t; state: the final `HyperLSTMState`.

    `step(x_t, state)` runs one time step (x_t: (B, N_x)) and returns (h_t of the top layer, state):
    the same computation as `forward` on a sequence of length 1 (decoders with input feeding use it).

    Example::

        >>> rnn = HyperLSTM(input_size=50, hidden_size=32, hyper_hidden_size=8, n_z=4)
        >>> out, state = rnn(torch.randn(7, 3, 50))
        >>> out.shape, state.h.shape, state.h_hat.shape
        (torch.Size([7, 3, 32]), torch.Size([1, 3, 32]), torch.Size([1, 3, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        hyper_hidden_size: int = 128,
        n_z: int = 4,
        use_hyper: bool = True,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        hyper_recurrent_dropout: float = 0.0,
        forget_bias: float = 1.0,
        ln_eps: float = 1e-3,
        dropout: float = 0.0,
        fast: bool = True,
    ):
        super().__init__()
        _check_sizes(num_layers=num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is a drop probability in [0, 1); got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.use_hyper = use_hyper
        self.dropout = dropout
        self.dropout_at_inference = False
        self.fast = fast
        self.layers = nn.ModuleList(
            HyperLSTMCell(
                input_size if layer == 0 else hidden_size, hidden_size, hyper_hidden_size, n_z,
                use_hyper, layer_norm, recurrent_dropout, hyper_recurrent_dropout, forget_bias, ln_eps,
            )
            for layer in range(num_layers)
        )

    def zero_state(self, batch: int, like: Tensor) -> HyperLSTMState:
        return stack_states([cell.zero_state(batch, like) for cell in self.layers])

    def retain_dropout_(self, retain: bool = True) -> "HyperLSTM":
        """Keep the dropout between layers and the recurrent dropout (R6, R7) on in eval mode too, e.g. for
        Monte-Carlo dropout; `retain=False` restores dropout in training only."""
        self.dropout_at_inference = retain
        for cell in self.layers:
            cell.dropout_at_inference = retain
        return self

    def make_generation_fast_(self, name: str = "", retain_dropout: bool = False,
                              retain_dropout_modules: Optional[List[str]] = None, **unused) -> None:
        """fairseq's inference hook, found by name (this module imports nothing of fairseq): with
        `--retain-dropout`, and `--retain-dropout-modules` unset or naming HyperLSTM, dropout stays on."""
        if retain_dropout and (retain_dropout_modules is None or type(self).__name__ in retain_dropout_modules):
            self.retain_dropout_()

    def forward(
        self,
        input: Tensor,
        state: Optional[HyperLSTMState] = None,
        lengths: Optional[Tensor] = None,
        return_internals: bool = False,
    ):
        self._check_input(input, state, lengths)
        steps, batch = input.shape[:2]
        if state is None:
            state = self.zero_state(batch, input)
        keep = None
        if lengths is not None:
            t = torch.arange(steps, device=input.device).unsqueeze(1)
            keep = (t < lengths.to(input.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
        x, finals, internals = input, [], []
        for layer, cell in enumerate(self.layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training or self.dropout_at_inference)
            run = fused_layer if self.fast and fast_path_applies(cell, x, return_internals) else run_layer
            x, final, layer_internals = run(cell, x, layer_state(state, layer), keep, return_internals)
            finals.append(final)
            internals.append(layer_internals)
        new_state = stack_states(finals)
        if return_internals:
            return x, new_state, stack_internals(internals)
        return x, new_state

    def step(self, x: Tensor, state: Optional[HyperLSTMState] = None) -> Tuple[Tensor, HyperLSTMState]:
        """One time step of the whole stack: x (B, N_x) -> (h_t of the top layer (B, N_h), new state).

        The same computation as `forward` on a length-1 sequence, so it takes the fused path where that
        applies (one-step inference without autograd goes through the kernels' step plan).
        """
        if x.dim() != 2:
            raise ValueError(f"HyperLSTM.step expects x of shape (B, {self.input_size}); got {tuple(x.shape)}")
        out, state = self.forward(x.unsqueeze(0), state)
        return out[0], state

    def _check_input(self, input: Tensor, state: Optional[HyperLSTMState], lengths: Optional[Tensor]) -> None:
        if input.dim() != 3 or input.shape[2] != self.input_size:
            raise ValueError(
                f"HyperLSTM expects input of shape (T, B, {self.input_size}); got {tuple(input.shape)}"
            )
        if input.shape[0] == 0:
            raise ValueError(f"HyperLSTM expects at least one time step (T >= 1, as nn.LSTM); got {tuple(input.shape)}")
        batch = input.shape[1]
        self._check_dtypes(input, state)
        if state is not None:
            self._check_state(state, batch)
        if lengths is not None:
            if lengths.shape != (batch,):
                raise ValueError(f"lengths must have shape ({batch},); got {tuple(lengths.shape)}")
            if bool((lengths < 0).any()) or bool((lengths > input.shape[0]).any()):
                raise ValueError(f"lengths must lie in [0, {input.shape[0]}]; got {lengths.tolist()}")


    def _check_dtypes(self, input: Tensor, state: Optional[HyperLSTMState]) -> None:
        """Input, state and weights of one dtype, as nn.LSTM demands (the reference's matmuls refuse a mix, and
        the fused path would otherwise compute silently in the input's dtype); autocast chooses its own."""
        if torch.is_autocast_enabled(input.device.type):
            return
        weight = self.layers[0].weight_ih.dtype
        if input.dtype != weight:
            raise ValueError(f"HyperLSTM input dtype ({input.dtype}) does not match weight dtype ({weight}): convert "
                             f"the input (input.to({weight})) or the model (model.to({input.dtype}))")
        mixed = [f"state.{name} is {t.dtype}" for name, t in zip(state._fields, state)
                 if t is not None and t.dtype != input.dtype] if state is not None else []
        if mixed:
            raise ValueError(f"HyperLSTM state dtype does not match the input's ({input.dtype}): {', '.join(mixed)}")

    def _check_state(self, state: HyperLSTMState, batch: int) -> None:
        """Each field (L, B, size), as nn.LSTM checks its (h_0, c_0); the hyper cell's too (N_ĥ)."""
        expected = (self.num_layers, batch, self.hidden_size)
        if tuple(state.h.shape) != expected or tuple(state.c.shape) != expected:
            raise ValueError(
                f"state.h and state.c must be {expected}; got {tuple(state.h.shape)} and {tuple(state.c.shape)}"
            )
        if not self.use_hyper:
            return
        if state.h_hat is None or state.c_hat is None:
            raise ValueError("state.h_hat and state.c_hat are required when use_hyper=True")
        hyper = (self.num_layers, batch, self.layers[0].hyper_hidden_size)
        if tuple(state.h_hat.shape) != hyper or tuple(state.c_hat.shape) != hyper:
            raise ValueError(f"state.h_hat and state.c_hat must be {hyper}; got {tuple(state.h_hat.shape)} and "
                             f"{tuple(state.c_hat.shape)}")


def run_layer(
    cell: HyperLSTMCell,
    x: Tensor,
    state: CellState,
    keep: Optional[Tensor],
    return_internals: bool,
) -> Tuple[Tensor, CellState, Optional[StepInternals]]:
    """Run one layer over the sequence: input projections in one matmul, then the time loop.

    keep: (T, B, 1) bool, True while a step lies inside its sequence; None for full batches.
    Returns the outputs (T, B, N_h), the final state and, if asked, stacked per-step internals.
    """
    steps, batch = x.shape[:2]
    x_proj, hyper_x_proj = cell.input_projection(x)
    masks, hyper_masks = cell.dropout_masks(steps, batch, x)
    outputs, recorded = [], []
    for t in range(steps):
        new, internals = cell.step(
            x_proj[t],
            None if hyper_x_proj is None else hyper_x_proj[t],
            state,
            None if masks is None else masks[t],
            None if hyper_masks is None else hyper_masks[t],
        )
        if keep is None:
            state, out = new, new.h
        else:
            state = where_state(keep[t], new, state)
            out = new.h * keep[t]
        outputs.append(out)
        if return_internals:
            recorded.append(internals)
    return torch.stack(outputs), state, stack_steps(recorded) if return_internals else None


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _masks(steps: int, batch: int, size: int, p: float, training: bool, like: Tensor) -> Optional[Tensor]:
    if not training or p == 0.0:
        return None
    keep = like.new_empty(steps, batch, size).bernoulli_(1.0 - p)
    return keep / (1.0 - p)
