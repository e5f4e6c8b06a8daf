"""How one call of a layer runs its loops: eagerly, or by replaying a CUDA graph of each loop.

Without a graph, every kernel of a step is launched from Python (5-50 µs of host time each), as long as
the GPU work of a step: on CUDA the whole forward time loop and the whole backward time loop of a layer
are therefore each captured once per `LayerShape` (sizes, flags, dtype: the plan's key) and replayed
(gpu-design §3). A `GraphPlan` owns static copies of the loops' inputs and all their buffers; a forward
copies the inputs in, replays, and returns clones of what callers may keep; a backward likewise. Inputs
are copied in at every call (parameters too), so a replay always computes with the current values.

A plan is made the second time a key is seen (the first, eager, call compiles the kernels), at most
`MAX_PLANS` per cell (least recently used dropped). One forward with autograd may be outstanding per
plan: until its backward (or until its graph is freed) further calls run eagerly, with the same kernels.
A retained graph (`retain_graph=True`) whose plan has replayed since cannot be backpropagated again and
says so. `HYPERFAIRSEQ_CUDA_GRAPHS=0` turns plans off; `=replay` makes them on any device, with an eager
re-run standing in for the graph (the tests use it to prove the plan logic on CPU). A plan whose making
fails (its warm-up or a capture raises: a driver, allocator or library that refuses an op inside a graph)
is not fatal: one warning names the error, the key is remembered as unplannable and its calls run
eagerly from then on, without another try.
"""

import os
import warnings
import weakref
from collections import OrderedDict
from typing import List, Optional

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

from .fused_loops import (
    LayerShape,
    LayerTensors,
    backward_loop,
    for_backward,
    forward_loop,
    new_grad_buffers,
    new_scratch,
    new_trace,
    prepare,
    prepare_backward,
    shape_of,
    weight_grads,
)
from .kernels import Kernels
from .workspace import WORKSPACE

GRAPHS_ENV = "HYPERFAIRSEQ_CUDA_GRAPHS"
MAX_PLANS = 2


def _mode() -> str:
    value = os.environ.get(GRAPHS_ENV, "1").strip().lower()
    return "off" if value in ("0", "false", "no", "off") else ("replay" if value == "replay" else "cuda")


def _alloc(like: Tensor, pooled: bool):
    """alloc(*shape, dtype=None): uninitialised; CPU buffers from the reuse pool unless `pooled` is False."""
    def alloc(*shape: int, dtype: Optional[torch.dtype] = None) -> Tensor:
        ref = like if dtype is None or dtype == like.dtype else like.new_empty(0, dtype=dtype)
        return WORKSPACE.empty(ref, *shape) if pooled else ref.new_empty(shape)
    return alloc


class EagerRun:
    """One call's loops launched eagerly, with fresh (or pooled) buffers."""

    def __init__(self, kernels: Kernels, shape: LayerShape, inputs: LayerTensors):
        self.kernels, self.shape = kernels, shape
        alloc = _alloc(inputs.x_proj, pooled=True)
        tr, sc = new_trace(shape, alloc), new_scratch(shape, alloc)
        prepare(inputs, tr, sc)
        forward_loop(kernels, inputs, tr, sc, shape)
        self.final = [None if s is None else s[shape.T].clone() for s in (tr.H, tr.C, tr.HH, tr.HC)]
        self.out = tr.out
        self._saved, self._spec = tree_flatten(for_backward(inputs, tr, sc))

    def take_saved(self) -> list:
        """The tensors the backward needs, handed to autograd (which frees them after the backward)."""
        saved, self._saved = self._saved, None
        return saved

    def outputs(self) -> tuple:
        """The layer's outputs and final state, handed over once (the run keeps no buffer after the forward)."""
        outputs, self.out, self.final = (self.out, *self.final), None, None
        return outputs

    def backward(self, saved, d_out: Tensor, finals: List[Optional[Tensor]]):
        inputs, tr, sc = tree_unflatten(list(saved), self._spec)
        gb = new_grad_buffers(self.shape, _alloc(inputs.x_proj, pooled=True), self.kernels.sum_slots)
        prepare_backward(inputs, gb, finals)
        backward_loop(self.kernels, inputs, tr, sc, gb, self.shape, d_out)
        return weight_grads(tr, gb, self.shape)


class _Capture:
    """A CUDA graph of `fn`, or (mode `replay`) `fn` itself, run again at every replay."""

    def __init__(self, fn, device: torch.device):
        self.fn, self.graph = fn, None
        if device.type == "cuda" and _mode() == "cuda":
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.result = fn()
        else:
            self.result = fn()

    def replay(self):
        if self.graph is None:
            self.result = self.fn()
        else:
            self.graph.replay()
        return self.result


def _static_like(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else torch.empty_like(t, memory_format=torch.contiguous_format)


class GraphPlan:
    """The static buffers and the two captured loops of one (cell, `LayerShape`)."""

    def __init__(self, kernels: Kernels, shape: LayerShape, template: LayerTensors):
        self.kernels, self.shape = kernels, shape
        self.inputs = LayerTensors(*(_static_like(t) for t in template))
        self.d_out = torch.empty_like(self.inputs.x_proj[..., : shape.N])
        self.finals = [_static_like(t) for t in (template.h0, template.c0, template.h_hat0, template.c_hat0)]
        alloc = _alloc(template.x_proj, pooled=False)
        self.tr, self.sc = new_trace(shape, alloc), new_scratch(shape, alloc)
        self.gb = new_grad_buffers(shape, alloc, kernels.sum_slots)
        for t in (*self.inputs, self.d_out, *self.finals):
            if t is not None:
                t.zero_()
        self.generation, self.busy = 0, None
        self._warm_up()
        self.forward_graph = _Capture(self._forward, shape.device)
        self.backward_graph = _Capture(self._backward, shape.device)

    def _forward(self) -> None:
        prepare(self.inputs, self.tr, self.sc)
        forward_loop(self.kernels, self.inputs, self.tr, self.sc, self.shape)

    def _backward(self):
        prepare_backward(self.inputs, self.gb, self.finals)
        backward_loop(self.kernels, self.inputs, self.tr, self.sc, self.gb, self.shape, self.d_out)
        return weight_grads(self.tr, self.gb, self.shape)

    def _warm_up(self) -> None:
        """Run both loops once on a side stream before capture (cuBLAS and allocator state, as PyTorch advises)."""
        if self.shape.device.type != "cuda" or _mode() != "cuda":
            return
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._forward()
            self._backward()
        torch.cuda.current_stream().wait_stream(stream)

    def forward(self, inputs: LayerTensors, needs_grad: bool) -> "PlanRun":
        for static, given in zip(self.inputs, inputs):
            if static is not None:
                static.copy_(given)
        self.forward_graph.replay()
        self.generation += 1
        run = PlanRun(self, self.generation)
        if needs_grad:
            self.busy = self.generation
        return run


class PlanRun:
    """One call served by a `GraphPlan`: outputs are clones; the backward replays the backward graph."""

    def __init__(self, plan: GraphPlan, generation: int):
        self.plan, self.generation = plan, generation
        tr, T = plan.tr, plan.shape.T
        self.out = tr.out.clone()
        self.final = [None if s is None else s[T].clone() for s in (tr.H, tr.C, tr.HH, tr.HC)]
        weakref.finalize(self, _release, weakref.ref(plan), generation)

    def take_saved(self) -> list:
        return []  # the plan holds the buffers

    def outputs(self) -> tuple:
        return (self.out, *self.final)

    def backward(self, saved, d_out: Tensor, finals: List[Optional[Tensor]]):
        plan = self.plan
        if plan.generation != self.generation:
            raise RuntimeError("hyperfairseq: this graph was kept (retain_graph) while its layer ran again, so its "
                               f"CUDA-graph buffers were overwritten; set {GRAPHS_ENV}=0 to backpropagate twice")
        plan.d_out.copy_(d_out)
        for static, grad in zip(plan.finals, finals):
            if static is not None:
                static.copy_(grad)
        grads = plan.backward_graph.replay()
        _release(weakref.ref(plan), self.generation)
        flat, spec = tree_flatten(grads)
        return tree_unflatten([None if g is None else g.clone() for g in flat], spec)


def _release(plan_ref, generation: int) -> None:
    plan = plan_ref()
    if plan is not None and plan.busy == generation:
        plan.busy = None


class _Eager:
    """The runner that always launches eagerly."""

    def __init__(self, kernels: Kernels, eps: float, hyper_eps: float, needs_grad: bool):
        self.kernels, self.eps, self.hyper_eps, self.needs_grad = kernels, eps, hyper_eps, needs_grad

    def forward(self, inputs: LayerTensors) -> EagerRun:
        return EagerRun(self.kernels, shape_of(inputs, self.eps, self.hyper_eps), inputs)


def _make_plan(kernels: Kernels, shape: LayerShape, inputs: LayerTensors) -> Optional[GraphPlan]:
    """A `GraphPlan` for `shape`, or None (after one warning) where making it raises; the stream current
    before is made current again (a capture that fails on ending leaves its side stream current). Its buffers
    are normal tensors even when the call runs under `torch.inference_mode()` (later training calls write them)."""
    stream = torch.cuda.current_stream() if shape.device.type == "cuda" else None
    try:
        with torch.inference_mode(False):
            return GraphPlan(kernels, shape, inputs)
    except Exception as err:  # the eager path serves every call the plan would have served
        if stream is not None:
            torch.cuda.set_stream(stream)
        warnings.warn(f"hyperfairseq: CUDA graph capture failed for a layer of shape {shape} "
                      f"({type(err).__name__}: {str(err)[:500]}); its calls run eagerly from now on "
                      f"(set {GRAPHS_ENV}=0 to skip the capture)", RuntimeWarning, stacklevel=2)
        return None


class _Planned:
    """Serves a call from the cell's plan for its shape when that plan is free, eagerly otherwise."""

    def __init__(self, cell, kernels: Kernels, eps: float, hyper_eps: float, needs_grad: bool):
        self.cell, self.kernels, self.eps, self.hyper_eps, self.needs_grad = cell, kernels, eps, hyper_eps, needs_grad

    def forward(self, inputs: LayerTensors):
        shape = shape_of(inputs, self.eps, self.hyper_eps)
        plans = self.cell.__dict__.setdefault("_graph_plans", OrderedDict())
        seen = self.cell.__dict__.setdefault("_graph_shapes_seen", set())
        unplannable = self.cell.__dict__.setdefault("_graph_unplannable", set())
        key = (shape, self.kernels.name)
        plan = plans.get(key)
        if plan is None and key in seen and key not in unplannable:
            plan = _make_plan(self.kernels, shape, inputs)
            if plan is None:
                unplannable.add(key)
            else:
                plans[key] = plan
                while len(plans) > MAX_PLANS:
                    plans.popitem(last=False)
        seen.add(key)
        if plan is None or plan.busy is not None:
            return EagerRun(self.kernels, shape, inputs)
        plans.move_to_end(key)
        return plan.forward(inputs, self.needs_grad)


def runner_for(cell, kernels: Kernels, inputs: LayerTensors, eps: float, hyper_eps: float):
    """The runner for one call (made before the autograd Function, which runs without grad mode):
    graph plans on CUDA (or anywhere in `replay` mode), else eager."""
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    mode = _mode()
    if mode == "replay" or (mode == "cuda" and inputs.x_proj.device.type == "cuda"):
        return _Planned(cell, kernels, eps, hyper_eps, needs_grad)
    return _Eager(kernels, eps, hyper_eps, needs_grad)
