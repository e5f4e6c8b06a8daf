"""The fused layer on a device against the float64 reference on the same device (the GPU check's stage 2).

For hyper and baseline layers, with and without layer norm, at boundary shapes (H 50/100/1000 at tiny
B, B 5/7/13, N_ĥ not a multiple of 16, T 1, N_z 1/4/17) and in float64, float32 (TF32 off) and
bfloat16: outputs, final states and every gradient of a fixed random loss, as the largest error
relative to the reference's largest value. Tolerances: float64 1e-10 (sums reordered only); float32
1e-4 (eps 1.2e-7 times ~1000-term sums, with margin); bfloat16 storage 6e-2 (8 mantissa bits: 3.9e-3
per rounding, a few roundings per step over T steps). Float64 cases also run dropout and padding with
the same masks. Then the CUDA-graph plan: a third call (replaying the plan made by the second) equals
the first, eager call bit for bit. Then incremental decoding (one step a call, eval, no grad: the
`fairseq-generate` path) in each storage dtype, three steps with the state carried. Not a pytest test
(CI has no GPU); `--device cpu` runs it on CPU (the dry run of gpu_check.sh). Exits non-zero on any
failure; `--json` writes every case.

    python benchmarks/check_kernels_on_device.py --device cuda --json out.json
"""

import argparse
import json
import sys
import time

import torch

from hyperfairseq.modules import HyperLSTM
from hyperfairseq.modules.fused_layer import fused_layer
from hyperfairseq.modules.hyperlstm import run_layer
from hyperfairseq.modules.state import CellState

SHAPES = {  # name: (T, B, N_x, N_h, N_ĥ, N_z)
    "tiny": (6, 4, 5, 8, 6, 3),
    "h50-b5-nz1": (3, 5, 7, 50, 17, 1),
    "h100-b7": (4, 7, 16, 100, 20, 4),
    "h1000-b13": (3, 13, 64, 1000, 128, 4),
    "t1-nz17": (1, 3, 16, 100, 24, 17),
}
QUICK = ("tiny", "h50-b5-nz1")
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 6e-2}
LAYERS = {"hyper": (True, False), "ln-hyper": (True, True), "lstm": (False, False), "ln-lstm": (False, True)}


def make(shape, use_hyper, layer_norm, dropout, device):
    T, B, n_x, n_h, n_hat, n_z = shape
    torch.manual_seed(0)
    rnn = HyperLSTM(n_x, n_h, 1, n_hat, n_z, use_hyper=use_hyper, layer_norm=layer_norm, recurrent_dropout=dropout)
    with torch.no_grad():
        for p in rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return rnn.to(device).layers[0]


def run(fn, cell, x, state, keep, dtype):
    cell, x = cell.to(dtype), x.to(dtype).requires_grad_()
    state = CellState(*(None if s is None else s.to(dtype).requires_grad_() for s in state))
    torch.manual_seed(123)
    out, final, _ = fn(cell, x, state, keep, False)
    g = torch.Generator(device=x.device).manual_seed(7)
    loss = (out.double() * torch.randn(out.shape, generator=g, device=x.device, dtype=torch.float64)).sum()
    loss = loss + sum(s.double().square().sum() for s in final if s is not None)
    grads = torch.autograd.grad(loss, [x, *(s for s in state if s is not None), *cell.parameters()])
    return [out, *(s for s in final if s is not None), *grads]


def random_inputs(shape, use_hyper, device, seed):
    """x (T, B, N_x) and an initial `CellState` drawn from N(0, 1)."""
    T, B, n_x, n_h, n_hat, _ = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, n_x, generator=g).to(device)
    state = CellState(*(torch.randn(B, n, generator=g).to(device) if n else None
                        for n in (n_h, n_h, n_hat * use_hyper, n_hat * use_hyper)))
    return x, state


def relative_error(got, ref) -> float:
    return max(((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()
               for a, b in zip(got, ref))


def check_case(name, shape, layer, dtype, dropout, padded, device):
    use_hyper, layer_norm = LAYERS[layer]
    T, B = shape[:2]
    cell = make(shape, use_hyper, layer_norm, dropout, device)
    x, state = random_inputs(shape, use_hyper, device, seed=1)
    keep = None
    if padded:
        lengths = torch.arange(B) % (T + 1)
        keep = (torch.arange(T).unsqueeze(1) < lengths).unsqueeze(-1).to(device)
    ref = run(run_layer, cell, x, state, keep, torch.float64)
    first = run(fused_layer, cell, x, state, keep, dtype)
    err = relative_error(first, ref)
    replays = [run(fused_layer, cell, x, state, keep, dtype) for _ in range(2)]  # plan made, then replayed
    same = all(torch.equal(a, b) for r in replays for a, b in zip(r, first))
    ok = err <= TOL[dtype] and same
    return {"case": name, "layer": layer, "dtype": str(dtype).replace("torch.", ""), "dropout": dropout,
            "padded": padded, "relative_error": err, "tolerance": TOL[dtype], "plan_replay_bit_identical": same,
            "ok": ok}


def check_one_step(name, shape, layer, dtype, device):
    """Incremental decoding (eval, no grad, one step a call with the state carried: the `fairseq-generate`
    path through `one_step`) for up to 3 steps against the float64 reference: outputs and final states."""
    use_hyper, layer_norm = LAYERS[layer]
    T = shape[0]
    cell = make(shape, use_hyper, layer_norm, 0.0, device).eval()
    x, state = random_inputs(shape, use_hyper, device, seed=2)

    def decode(fn, dt):
        s, outs = CellState(*(None if v is None else v.to(dt) for v in state)), []
        with torch.no_grad():
            for t in range(min(T, 3)):
                out, s, _ = fn(cell.to(dt), x[t:t + 1].to(dt), s, None)
                outs.append(out)
        return [torch.cat(outs), *(v for v in s if v is not None)]

    ref = decode(lambda *a: run_layer(*a, False), torch.float64)
    err = relative_error(decode(fused_layer, dtype), ref)
    return {"case": name, "layer": layer, "dtype": str(dtype).replace("torch.", ""), "one_step": True,
            "relative_error": err, "tolerance": TOL[dtype], "ok": err <= TOL[dtype]}


# (dtype, recurrent dropout, padded) of each layer: every storage dtype, then dropout with padding in float64
VARIANTS = ((torch.float64, 0.0, False), (torch.float32, 0.0, False), (torch.bfloat16, 0.0, False),
            (torch.float64, 0.3, True))
ONE_STEP_DTYPES = (torch.float64, torch.float32, torch.bfloat16)


def cases(names, each_once=False):
    """Every (shape, layer, variant), then one-step decoding per (shape, layer, storage dtype); with
    `each_once`, layer i takes variant i only, so each layer, each dtype and the dropout-with-padding case
    run once, and one-step decoding once per layer (8 cases a shape: every line of this script, not every
    combination; the CPU dry run's choice, where the unit tests already hold the Triton kernels to the
    reference for every layer under the interpreter). Yields (function, its arguments)."""
    for name in names:
        for i, layer in enumerate(LAYERS):
            for dtype, dropout, padded in (VARIANTS[i % len(VARIANTS)],) if each_once else VARIANTS:
                yield check_case, (name, SHAPES[name], layer, dtype, dropout, padded)
        for i, layer in enumerate(LAYERS):
            for dtype in (ONE_STEP_DTYPES[i % 3],) if each_once else ONE_STEP_DTYPES:
                yield check_one_step, (name, SHAPES[name], layer, dtype)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="the two smallest shapes, each code path once (for compute-sanitizer, which slows every "
                        "launch)")
    p.add_argument("--shapes", default=None, help=f"comma-separated names of {list(SHAPES)} (default: all)")
    p.add_argument("--each-once", action="store_true",
                   help="each layer, dtype and the dropout case once, not every combination (the CPU dry run)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 GEMMs: the tolerance above assumes them
    results, start = [], time.time()
    names = args.shapes.split(",") if args.shapes else (QUICK if args.quick else list(SHAPES))
    for check, (name, shape, layer, dtype, *variant) in cases(names, args.each_once or args.quick):
        try:
            row = check(name, shape, layer, dtype, *variant, device)
        except Exception as err:  # record and go on: one broken case must not hide the others
            row = {"case": name, "layer": layer, "dtype": str(dtype), "one_step": check is check_one_step,
                   "ok": False, "error": f"{type(err).__name__}: {err}"}
        results.append(row)
        print(json.dumps(row), flush=True)
    failed = [r for r in results if not r["ok"]]
    summary = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "cases": len(results), "failed": len(failed), "seconds": time.time() - start, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"{len(results) - len(failed)}/{len(results)} cases ok", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
