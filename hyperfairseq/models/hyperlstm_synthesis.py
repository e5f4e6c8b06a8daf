"""Handwriting synthesis model `hyperlstm_synthesis`: HyperLSTM layers over pen offsets, conditioned on a
text through Graves' soft window, with a mixture-density head (issue 15).

Graves 2013 (arXiv 1308.0850) §5, Eq. 46–52, with the HyperNetworks cell (arXiv 1609.09106v4, Eq. 10–13)
in every layer. Use it as::

    fairseq-train data-bin/hershey --user-dir hyperfairseq --task handwriting_synthesis \
        --arch hyperlstm_synthesis --criterion mdn --optimizer adam --lr 1e-3 --clip-norm 5 --batch-size 32

Layout (Graves §5; every other choice named as ours):
* layer 1 reads [x_t, w_{t−1}] (Graves' h¹ equation) and is stepped (`HyperLSTM.step`): the window w_t
  depends on h¹_t (`modules/soft_window.py`, Eq. 46–51) and feeds layer 1 at t + 1;
* layer n ≥ 2 reads [x_t, w_t, h^{n−1}_t] (skip connections from the input and the window to every
  layer) and runs over the whole sequence at once;
* the MDN layer reads [h¹_t, …, h^N_t] (skip connections from every layer to the output, Graves Eq. 17)
  after output dropout (H5): 1 + 6·M outputs, `modules/mdn.py`.
* Characters are one-hot vectors over the training text's alphabet plus `<unk>` (Graves' choice; S6:
  ours to keep it, not an embedding), so C = len(alphabet) + 1; the alphabet is a config field and
  travels in the checkpoint.

The state (`SynthesisState`) holds every layer's `HyperLSTMState`, κ and w, so stepping one row at a
time from a state gives exactly the teacher-forced scores (tests/unit/test_synthesis_model.py).
`python -m hyperfairseq.params --arch hyperlstm_synthesis --vocab C` counts the parameters.
"""

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Tuple

import torch
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.modules import FairseqDropout
from torch import Tensor, nn

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTMState
from hyperfairseq.modules.mdn import PEN_ROW_SIZE, MixtureParams, output_size, split_outputs
from hyperfairseq.modules.soft_window import SoftWindow, WindowStep, one_hot_chars

from .architectures import base_of, set_defaults
from .config import PEN_RULES, PenModelConfig, build_hyperlstm, check_config, positive
from .pen_normalisation import ComparesPenNormalisation, register_normalisation, take_data_normalisation
from .state_dict_check import ChecksCheckpointFit

MODEL_NAME = "hyperlstm_synthesis"


@dataclass
class HyperLSTMSynthesisConfig(PenModelConfig):
    """The pen model conditioned on a text through Graves' soft window (2013, §5.1); sized like his
    synthesis net (3 × 400, K = 10), as HyperLSTMs."""

    decoder_hidden_size: int = field(default=400, metadata={"help": "N_h per layer; Graves' synthesis net uses 400"})
    decoder_layers: int = field(default=3, metadata={"help": "stacked layers (Graves: 3); layer 1 drives the window"})
    num_gaussians: int = field(default=10, metadata={"help": "K, window Gaussians (Graves: 10), Eq. 46"})
    kappa_bias_init: float = field(
        default=-2.302585, metadata={"help": "initial bias of κ̂ (S5, ours): log of characters advanced per step"}
    )
    alphabet: str = field(
        default="", metadata={"help": "the characters of the one-hot input (set from the data's meta.json)"}
    )


RULES = PEN_RULES + (positive("decoder_hidden_size", "decoder_layers", "num_gaussians"),)


class SynthesisState(NamedTuple):
    """Recurrent state: `layers` one `HyperLSTMState` (L = 1) per layer; kappa (B, K) κ_t; w (B, C) w_t."""

    layers: Tuple[HyperLSTMState, ...]
    kappa: Tensor
    w: Tensor


class WindowTrace(NamedTuple):
    """The window over a sequence: phi (B, T, U + 1) φ(t, u) for u = 1 … U + 1; kappa (B, T, K)."""

    phi: Tensor
    kappa: Tensor


class SynthesisOutput(NamedTuple):
    """Like `StrokeModelOutput` (the criterion reads `mixture` by name), plus the window trace."""

    mixture: MixtureParams
    state: SynthesisState
    internals: Optional[object]
    window: WindowTrace


class SynthesisDecoder(nn.Module):
    """(B, T, 3) pen rows and (B, U) characters -> `SynthesisOutput`. Buffers norm_mean / norm_std hold
    the data's normalisation of (Δx, Δy) (H1), as in `HandwritingDecoder`."""

    def __init__(self, cfg: HyperLSTMSynthesisConfig, num_symbols: int):
        super().__init__()
        self.num_symbols = num_symbols
        self.num_mixtures = cfg.num_mixtures
        self.dropout_out = FairseqDropout(cfg.dropout_out, module_name=type(self).__name__)  # --retain-dropout too
        n_h, c = cfg.decoder_hidden_size, num_symbols
        sizes = [PEN_ROW_SIZE + c] + [PEN_ROW_SIZE + c + n_h] * (cfg.decoder_layers - 1)
        self.layers = nn.ModuleList(build_hyperlstm(cfg, size, n_h) for size in sizes)
        self.window = SoftWindow(n_h, cfg.num_gaussians, cfg.kappa_bias_init)
        self.output_projection = nn.Linear(cfg.decoder_layers * n_h, output_size(cfg.num_mixtures))
        register_normalisation(self)

    def zero_state(self, batch: int, like: Tensor) -> SynthesisState:
        k = self.window.num_gaussians
        layers = tuple(rnn.zero_state(batch, like) for rnn in self.layers)
        return SynthesisState(layers, like.new_zeros(batch, k), like.new_zeros(batch, self.num_symbols))

    def forward(self, strokes: Tensor, chars: Tensor, lengths: Optional[Tensor] = None,
                state: Optional[SynthesisState] = None, bias: float = 0.0) -> SynthesisOutput:
        x = strokes.transpose(0, 1).to(self.output_projection.weight.dtype)  # (T, B, 3), time-major
        c = one_hot_chars(chars, self.num_symbols, x.dtype)  # (B, U, C)
        state = state if state is not None else self.zero_state(x.shape[1], x)
        h1, first, window = self.first_layer(x, c, lengths, state)
        hs, finals = [h1], [first]
        for rnn, upper_state in zip(self.layers[1:], state.layers[1:]):
            out, final = rnn(torch.cat([x, window.w, hs[-1]], -1), upper_state, lengths=lengths)
            hs.append(out)
            finals.append(final)
        h = self.dropout_out(torch.cat(hs, -1))  # H5
        mixture = split_outputs(self.output_projection(h.transpose(0, 1)), self.num_mixtures, bias)
        new_state = SynthesisState(tuple(finals), window.kappa[-1], window.w[-1])
        trace = WindowTrace(window.phi.transpose(0, 1), window.kappa.transpose(0, 1))
        return SynthesisOutput(mixture, new_state, None, trace)

    def first_layer(self, x: Tensor, c: Tensor, lengths: Optional[Tensor], state: SynthesisState):
        """Step layer 1 and the window: h¹_t from [x_t, w_{t−1}], then w_t from h¹_t (Eq. 46–51).

        Returns h¹ (T, B, N_h), the final layer-1 state and a `WindowStep` of (T, B, ·) stacks; after a
        line's end (t ≥ lengths) its state, κ and w stay as they were.
        """
        steps = x.shape[0]
        rnn_state, kappa, w = state.layers[0], state.kappa, state.w
        keep = (
            None if lengths is None
            else (torch.arange(steps, device=x.device)[:, None] < lengths.to(x.device))[..., None]
        )
        hs, trace = [], []
        for t in range(steps):
            h, new = self.layers[0].step(torch.cat([x[t], w], -1), rnn_state)  # Graves: h¹ reads w_{t−1}
            step = self.window(h, kappa, c)  # Eq. 46-51 from h¹_t
            if keep is not None:
                new = HyperLSTMState(
                    *(None if n is None else torch.where(keep[t], n, o) for n, o in zip(new, rnn_state))
                )
                step = WindowStep(torch.where(keep[t], step.kappa, kappa), torch.where(keep[t], step.w, w), step.phi)
                h = h * keep[t]
            rnn_state, kappa, w = new, step.kappa, step.w
            hs.append(h)
            trace.append(step)
        return torch.stack(hs), rnn_state, WindowStep(*(torch.stack(f) for f in zip(*trace)))


@register_model(MODEL_NAME, dataclass=HyperLSTMSynthesisConfig)
class HyperLSTMSynthesisModel(ComparesPenNormalisation, ChecksCheckpointFit, BaseFairseqModel):
    """`--arch hyperlstm_synthesis` / `lstm_synthesis` with `--task handwriting_synthesis`:
    forward(strokes, chars, lengths, char_lengths) -> `SynthesisOutput`."""

    def __init__(self, decoder: SynthesisDecoder, alphabet: str):
        super().__init__()
        self.decoder = decoder
        self.alphabet = alphabet

    @classmethod
    def build_model(cls, cfg: HyperLSTMSynthesisConfig, task):
        data_alphabet = getattr(task, "alphabet", None)
        if not cfg.alphabet:
            if not data_alphabet:
                raise InputError("hyperlstm_synthesis needs the data's alphabet: use --task handwriting_synthesis "
                                 "on a data-bin with transcripts (meta.json 'alphabet')")
            cfg.alphabet = data_alphabet  # saved with the config, so a checkpoint alone knows its characters
        elif data_alphabet and data_alphabet != cfg.alphabet:
            raise InputError(f"the checkpoint's alphabet {cfg.alphabet!r} differs from the data's {data_alphabet!r}")
        decoder = cls.build_decoder(cfg, None, len(cfg.alphabet) + 1)
        model = cls(decoder, cfg.alphabet)
        model.data_normalisation = take_data_normalisation(decoder, task)
        return model

    @classmethod
    def build_decoder(cls, cfg: HyperLSTMSynthesisConfig, dictionary, num_symbols: int) -> SynthesisDecoder:
        """The network `python -m hyperfairseq.params` counts; num_symbols = C = alphabet + <unk>."""
        if num_symbols < 2:
            raise InputError(f"synthesis needs at least one character besides <unk>; got --vocab {num_symbols}")
        check_config(cfg, RULES)
        return SynthesisDecoder(cfg, num_symbols)

    def forward(
        self, strokes, chars, lengths=None, char_lengths=None, state=None, bias=0.0, **unused
    ) -> SynthesisOutput:
        return self.decoder(strokes, chars, lengths, state, bias)

    def max_positions(self):
        return None

# -- architectures -------------------------------------------------------------------------------------
# EXACT_PARAMS: exact counts asserted by tests for `--vocab 62` (61 Hershey/KJV characters + <unk>).
EXACT_PARAMS = {}


def _arch(name, exact):
    def register(fn):
        EXACT_PARAMS[name] = {"exact": exact, "vocab": 62}
        if name == MODEL_NAME:  # register_model made the model name an architecture: the dataclass defaults
            return fn
        return register_model_architecture(MODEL_NAME, name)(fn)

    return register


def base_architecture(cfg):
    """The dataclass defaults: Graves' 3 × 400 network with HyperLSTM cells."""
    set_defaults(cfg, **base_of(HyperLSTMSynthesisConfig))


@_arch("hyperlstm_synthesis", 5_072_263)
def hyperlstm_synthesis(cfg):
    """Graves' 3 × 400 synthesis network with HyperLSTM cells (N_ĥ 128, N_z 4), K = 10, M = 20."""
    base_architecture(cfg)


@_arch("lstm_synthesis", 5_075_526)
def lstm_synthesis(cfg):
    """The LSTM baseline with about the parameters of `hyperlstm_synthesis`: 3 layers of N_h units."""
    set_defaults(cfg, no_hyper=True, decoder_hidden_size=475)
    base_architecture(cfg)
