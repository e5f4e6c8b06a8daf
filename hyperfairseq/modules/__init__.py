"""The paper's building blocks in plain PyTorch (no fairseq import)."""

from .hyperlstm import HyperLSTM, HyperLSTMCell
from .state import CellState, HyperLSTMInternals, HyperLSTMState, detach_state, reorder_state

__all__ = ["CellState", "HyperLSTM", "HyperLSTMCell", "HyperLSTMInternals", "HyperLSTMState", "detach_state",
           "reorder_state"]
