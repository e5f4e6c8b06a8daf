"""Carried states under data-parallel training (`--task char_lm`): each rank carries its own rows of every
stream (`StreamDataset` gives rank r the rows [r·B, (r+1)·B) of the B·ranks streams); a checkpoint holds the
rows of all ranks, and each rank takes its own back on resume. fairseq saves on rank 0 only, so the rows are
gathered where every rank saves together (`fairseq_patches` §15)."""

from typing import Dict

import torch
import torch.distributed as dist

from hyperfairseq.modules import HyperLSTMState


def data_parallel() -> tuple:
    """(rank, ranks) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(carried: Dict[str, HyperLSTMState]) -> Dict[str, HyperLSTMState]:
    """The streams every rank carries, each field (L, B·ranks, size) in rank order. A collective: every rank
    calls it at the same point."""
    _, ranks = data_parallel()
    names = [None] * ranks
    dist.all_gather_object(names, sorted(carried))
    common = sorted(set.intersection(*map(set, names)))
    gathered = {}
    for name in common:
        fields = {}
        for field, tensor in carried[name]._asdict().items():
            if tensor is not None:
                parts = [torch.empty_like(tensor) for _ in range(ranks)]
                dist.all_gather(parts, tensor.contiguous())
                tensor = torch.cat(parts, dim=1)
            fields[field] = tensor
        gathered[name] = HyperLSTMState(**fields)
    return gathered


def rows_of_this_rank(carried: Dict[str, HyperLSTMState], saved_ranks: int) -> Dict[str, HyperLSTMState]:
    """This rank's rows of states saved from `saved_ranks` ranks; none if the run now has another number of
    ranks (its streams are laid out anew and start from zeros: the task refuses that without
    --reset-dataloader)."""
    rank, ranks = data_parallel()
    if saved_ranks == 1 and ranks == 1:
        return carried
    if saved_ranks != ranks:
        return {}
    rows = lambda t: None if t is None else t.chunk(ranks, dim=1)[rank].clone()  # noqa: E731
    return {name: HyperLSTMState(*(rows(t) for t in state)) for name, state in carried.items()}
