"""Reuse of the fast path's large CPU buffers across calls (what PyTorch's caching allocator does on GPUs).

A training step allocates ~1 GB of per-step buffers at batch 128 (PTB size), and fresh memory is zeroed
by the OS page by page: ~10 % of the step. `WORKSPACE.empty(like, *shape)` hands a buffer out again only
when nothing else holds its storage (its use count says so): no saved tensor of a live graph
(retain_graph included), no output, view or gradient; so reuse never changes a result. A request takes
a free buffer of its size or up to 1/16 larger (so a reused buffer barely adds to the memory a graph
holds), and only one made in the same inference mode (an inference tensor cannot serve autograd later).
The buffers kept total at most HYPERFAIRSEQ_CPU_WORKSPACE_MB (default 4096; 0 turns reuse off), oldest
dropped first; `clear()` drops them all. Other devices get plain `new_empty`.
"""

import ctypes
import os
import sys
import threading
from collections import deque

import torch
from torch import Tensor

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_REUSE_MIN_BYTES = 8 << 20
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)  # None: no reuse (another torch)


def _libc_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_madvise = _libc_madvise()


def fresh(like: Tensor, *shape: int) -> Tensor:
    """`like.new_empty(shape)`, asking Linux for transparent huge pages when the CPU buffer is large.

    The per-step buffers are written once each, on fresh memory: with 4 KiB pages every page costs a
    fault on first touch, which at batch 128 costs more than the arithmetic that fills it (~80 ms per
    230 MB here). madvise(MADV_HUGEPAGE) is advisory; it is skipped off Linux, on GPUs and for small buffers.
    """
    t = like.new_empty(shape)
    nbytes = t.numel() * t.element_size()
    if _madvise is not None and t.device.type == "cpu" and nbytes >= 4 * _HUGE_PAGE:
        start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (t.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)
    return t


class Workspace:
    """The pool of reusable CPU buffers (see the module docstring)."""

    def __init__(self):
        self.entries: deque = deque()
        self.lock = threading.Lock()

    @staticmethod
    def max_bytes() -> int:
        return int(float(os.environ.get("HYPERFAIRSEQ_CPU_WORKSPACE_MB", "4096")) * 2 ** 20)

    @staticmethod
    def _free(t: Tensor) -> bool:
        return _storage_use_count(t.untyped_storage()._cdata) <= 2  # t itself + the temporary storage object

    def _reusable(self, t: Tensor, dtype: torch.dtype, numel: int, inference: bool) -> bool:
        return (t.dtype == dtype and numel <= t.numel() <= numel + numel // 16
                and t.is_inference() == inference and self._free(t))

    def empty(self, like: Tensor, *shape: int) -> Tensor:
        numel = 1
        for n in shape:
            numel *= n
        limit = self.max_bytes()
        if (_storage_use_count is None or like.device.type != "cpu" or limit <= 0
                or numel * like.element_size() < _REUSE_MIN_BYTES):
            return fresh(like, *shape)
        inference = torch.is_inference_mode_enabled()
        with self.lock:
            for i, t in enumerate(self.entries):
                if self._reusable(t, like.dtype, numel, inference):
                    del self.entries[i]
                    self.entries.append(t)  # most recently used last
                    return t[:numel].view(shape)
            t = fresh(like, numel)
            self.entries.append(t)
            total = sum(e.numel() * e.element_size() for e in self.entries)
            while total > limit and len(self.entries) > 1:
                old = self.entries.popleft()  # a buffer still in use stays alive with its users
                total -= old.numel() * old.element_size()
            return t.view(shape)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


WORKSPACE = Workspace()
