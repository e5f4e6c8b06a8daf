"""Additive (Bahdanau) attention, as in GNMT (Wu et al. 2016, §3): score_j = v·tanh(W_q q + W_k k_j + b).

Plain PyTorch. Keys are projected once per source batch (`project_keys`) and reused at every decoder step.
"""

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdditiveAttention(nn.Module):
    """query (B, N_q) over keys/values (S, B, N_k) with a padding mask (S, B) -> context (B, N_k), weights (B, S).

    Attributes:
        query_proj: W_q, (A, N_q) without bias.  key_proj: W_k and b, (A, N_k) + (A,).  v: (A,).
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=True)
        self.v = nn.Parameter(torch.empty(attention_dim))
        nn.init.uniform_(self.v, -0.1, 0.1)

    def project_keys(self, keys: Tensor) -> Tensor:
        """(S, B, N_k) -> (S, B, A): W_k k_j + b for every source position, once per batch."""
        return self.key_proj(keys)

    def forward(
        self, query: Tensor, projected_keys: Tensor, values: Tensor, padding_mask: Tensor
    ) -> Tuple[Tensor, Tensor]:
        scores = torch.tanh(projected_keys + self.query_proj(query).unsqueeze(0)) @ self.v  # (S, B)
        scores = scores.masked_fill(padding_mask, float("-inf"))
        weights = F.softmax(scores, dim=0)
        context = (weights.unsqueeze(-1) * values).sum(0)
        return context, weights.t()
