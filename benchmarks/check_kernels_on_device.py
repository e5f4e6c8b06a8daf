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
failure or on a case a worker never ran; `--json` is rewritten after every case, so a run stopped by a
time limit keeps what it did. `--jobs N` runs the cases in N processes (each compiles its kernel variants
on an empty Triton cache in seconds; they share the on-disk cache), `--budget-s` starts no case after
that many seconds (the rest are recorded as skipped).

    python benchmarks/check_kernels_on_device.py --device cuda --json out.json
    python benchmarks/check_kernels_on_device.py --device cuda --each-once --full h1000-b13 --jobs 6 \
        --budget-s 50 --json out.json                                              # the GPU check's set
"""

import argparse
import json
import queue
import subprocess
import sys
import threading
import time

import torch

from hyperfairseq import run_record
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


ROW = "case-row "  # how a worker process hands a finished case to the parent (one JSON line)


def shape_cases(name, each_once=False) -> list:
    """One shape's cases: every (layer, variant), then one-step decoding per (layer, storage dtype); with
    `each_once`, layer i takes variant i only, so each layer, each dtype and the dropout-with-padding case
    run once, and one-step decoding once per layer (8 cases: every line of this script, not every
    combination). Each case is (function, its arguments)."""
    out = []
    for i, layer in enumerate(LAYERS):
        for dtype, dropout, padded in (VARIANTS[i % len(VARIANTS)],) if each_once else VARIANTS:
            out.append((check_case, (name, SHAPES[name], layer, dtype, dropout, padded)))
    for i, layer in enumerate(LAYERS):
        for dtype in (ONE_STEP_DTYPES[i % 3],) if each_once else ONE_STEP_DTYPES:
            out.append((check_one_step, (name, SHAPES[name], layer, dtype)))
    return out


def cases(names, each_once=False, full=()) -> list:
    """The cases of the shapes `names`, then every combination of the shapes `full` not listed yet. The GPU
    check runs each code path once at every shape and every combination at one realistic shape: each case
    compiles its own kernel variants on an empty Triton cache (seconds each), so the full matrix at every
    shape would not fit its minute; listed in this order, the widest spread of cases runs first."""
    listed = [c for name in names for c in shape_cases(name, each_once)]
    return listed + [c for name in full for c in shape_cases(name, False) if c not in listed]


def run_case(index: int, check, args, device) -> dict:
    """One case's row; an exception is recorded in the row (one broken case must not hide the others)."""
    name, shape, layer, dtype, *variant = args
    try:
        row = check(name, shape, layer, dtype, *variant, device)
    except Exception as err:
        row = {"case": name, "layer": layer, "dtype": str(dtype).replace("torch.", ""),
               "one_step": check is check_one_step, "ok": False, "error": f"{type(err).__name__}: {err}"[:2000]}
    return {"index": index, **row}


def label(index: int, check, args) -> str:
    name, _, layer, dtype, *variant = args
    kind = "one-step" if check is check_one_step else "layer"
    return f"{index} {name} {layer} {kind} {str(dtype).replace('torch.', '')} {variant}"


def run_slice(todo, device, jobs: int, worker: int, stop_at: float, emit) -> None:
    """Run this worker's share of the cases (every `jobs`-th from `worker`), in order; a case due after
    `stop_at` (epoch seconds) is not started but handed on as skipped."""
    for i, (check, args) in enumerate(todo):
        if i % jobs != worker:
            continue
        if time.time() > stop_at:
            emit({"index": i, "skipped": label(i, check, args)})
            continue
        emit(run_case(i, check, args, device))


def run_workers(args, stop_at: float, emit) -> int:
    """`args.jobs` processes of this script, each running its share (`run_slice`) on the same device and
    sharing Triton's on-disk cache, so the kernel variants compile on as many cores; every row is handed to
    `emit` as it arrives. Returns the workers' highest exit status."""
    base = [sys.executable, __file__, "--device", args.device, "--jobs", str(args.jobs), "--stop-at", str(stop_at),
            "--shapes", ",".join(args.names)] + (["--each-once"] if args.each_once or args.quick else [])
    base += ["--full", args.full] if args.full else []
    procs = [subprocess.Popen(base + ["--worker", str(k)], stdout=subprocess.PIPE, text=True)
             for k in range(args.jobs)]
    rows = queue.Queue()

    def relay(proc) -> None:
        for line in proc.stdout:
            if line.startswith(ROW):
                rows.put(json.loads(line[len(ROW):]))
            else:
                print(line, end="", flush=True)
        rows.put(None)

    for proc in procs:
        threading.Thread(target=relay, args=(proc,), daemon=True).start()
    finished = 0
    while finished < len(procs):
        row = rows.get()
        if row is None:
            finished += 1
        else:
            emit(row)
    return max(proc.wait() for proc in procs)


class Record:
    """The rows so far and the JSON that holds them, rewritten after every row (a stage cut short by its time
    limit keeps what it did)."""

    def __init__(self, path, device, planned: int):
        self.path, self.start, self.planned = path, time.time(), planned
        self.device = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        self.results, self.skipped = [], []

    def add(self, row: dict) -> None:
        if "skipped" in row:
            self.skipped.append(row["skipped"])
        else:
            self.results.append(row)
            print(json.dumps(row), flush=True)
        self.write()

    def summary(self) -> dict:
        failed = [r for r in self.results if not r["ok"]]
        not_run = self.planned - len(self.results) - len(self.skipped)
        return {"device": self.device, "torch": torch.__version__, "planned": self.planned,
                "cases": len(self.results), "failed": len(failed), "skipped": len(self.skipped), "not_run": not_run,
                "complete": not_run == 0 and not self.skipped, "seconds": time.time() - self.start,
                "skipped_cases": self.skipped, "results": sorted(self.results, key=lambda r: r["index"])}

    def write(self) -> None:
        if self.path:
            run_record.write(self.path, self.summary())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="the two smallest shapes, each code path once (for compute-sanitizer, which slows every "
                        "launch)")
    p.add_argument("--shapes", default=None, help=f"comma-separated names of {list(SHAPES)}, run in this order "
                                                  "(default: all)")
    p.add_argument("--each-once", action="store_true",
                   help="each layer, dtype and the dropout case once, not every combination")
    p.add_argument("--full", default="", help="comma-separated shapes that also run every combination, after the "
                                              "others (the GPU check: --each-once --full h1000-b13)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (the cases' kernels compile in parallel)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="start no case after this many seconds; those left are recorded as skipped")
    p.add_argument("--json", default=None, help="written after every case")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stop-at", type=float, default=None,
                   help="start no case after this time (epoch seconds; a caller's deadline, start-up included)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 GEMMs: the tolerance above assumes them
    args.names = args.shapes.split(",") if args.shapes else list(QUICK if args.quick else SHAPES)
    todo = cases(args.names, args.each_once or args.quick, [s for s in args.full.split(",") if s])
    stop_at = args.stop_at or (time.time() + args.budget_s if args.budget_s is not None else float("inf"))
    if args.worker is not None:  # one of run_workers' processes: rows go to the parent
        run_slice(todo, device, args.jobs, args.worker, stop_at,
                  lambda row: print(ROW + json.dumps(row), flush=True))
        return 0
    record = Record(args.json, device, len(todo))
    if args.jobs > 1:
        status = run_workers(args, stop_at, record.add)
    else:
        status = 0
        run_slice(todo, device, 1, 0, stop_at, record.add)
    record.write()
    summary = record.summary()
    print(f"{summary['cases'] - summary['failed']}/{summary['cases']} cases ok, {summary['skipped']} skipped "
          f"(time budget), {summary['not_run']} not run (a worker stopped; exit {status})", flush=True)
    return 1 if summary["failed"] or summary["not_run"] else 0


if __name__ == "__main__":
    sys.exit(main())
