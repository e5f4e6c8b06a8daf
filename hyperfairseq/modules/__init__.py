"""The paper's building blocks in plain PyTorch (no fairseq import)."""

from .hyperlstm import HyperLSTM, HyperLSTMCell, HyperLSTMInternals, HyperLSTMState

__all__ = ["HyperLSTM", "HyperLSTMCell", "HyperLSTMInternals", "HyperLSTMState"]
