"""Microbenchmark of the Triton cell ops (`hyperfairseq/modules/triton_cell.py`) inside CUDA graphs.

For each paper cell (PTB: main 1000 units with d = z W_d in the kernel, N_z 4, hyper 128; enwik8: main
1800 with d given, N_z 64, hyper 256; LN and the recurrent-dropout mask on, batch 128), each storage
dtype (float32, bfloat16 with float32 statistics) and each tile (the table's and its alternatives,
`triton_kernels.TILE_ALTERNATIVES`), it captures `--steps` forward launches in one CUDA graph, and as
many backward launches in another, replays them and reports microseconds per launch (CUDA events), the
eager (host-launched) microseconds per launch, and the forward's largest error against a float64 step;
at the end, the registers and spills of every kernel variant the JIT compiled (a spill fails the run).
Every part runs in its own try/except: a failure is recorded and the rest goes on; the JSON is rewritten
after every part (to a temporary name, then renamed), so a run stopped by a time limit keeps what it did.
The table's tiles run first, the alternatives after; `--budget-s` starts no run after that many seconds.

    python benchmarks/bench_triton_cell.py --json docs/runs/bench_triton_cell_h200.json     # on the GPU
    python benchmarks/bench_triton_cell.py --dry-run --json /tmp/dry.json                  # CPU, interpreter

`--dry-run` runs the same code on CPU under TRITON_INTERPRET=1 at tiny sizes (no graphs, no timings):
it proves the script's code paths before GPU time is spent on it.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

STARTED = time.perf_counter()  # --budget-s counts from here: the imports below take seconds
REPO = Path(__file__).resolve().parents[1]
DRY = "--dry-run" in sys.argv
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernels' module is imported

import torch  # noqa: E402


def _load(name: str, path: Path):
    """A module by file path (the gate and run_record need neither fairseq nor the package import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = _load("triton_aot_gate", REPO / "benchmarks" / "triton_aot_gate.py")
run_record = _load("hyperfairseq_run_record", REPO / "hyperfairseq" / "run_record.py")
sys.path.insert(0, str(REPO))
from hyperfairseq.modules import triton_cell  # noqa: E402
from hyperfairseq.modules import triton_kernels as kernels  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
EPS = 1e-3


def make_step(case, B: int, n: int, dtype, device, seed: int = 0) -> dict:
    """Inputs and every buffer of one step of `case` (LN on, mask on), contiguous; statistics in float32."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=g, dtype=torch.float64) * scale).to(device)  # noqa: E731
    x = dict(p1=r(B, 4, n), p2=r(B, 4, n), c_prev=r(B, n), dh=r(B, n), dc=r(B, n),
             mask=((torch.rand(B, n, generator=g) > 0.1).double() / 0.9).to(device),
             gate_w=1 + r(4, n, scale=0.2), gate_b=r(4, n, scale=0.2), cell_w=1 + r(n, scale=0.2),
             cell_b=r(n, scale=0.2))
    if case.scale != "none":
        x.update(z=r(B, 12, case.n_z, scale=0.5), w_d=r(12, case.n_z, n, scale=0.5), d_bias=r(4, n, scale=0.3))
        if case.scale == "d":
            x["d"] = torch.einsum("brj,rjn->brn", x.pop("z"), x.pop("w_d"))
    x = {k: v.to(dtype) for k, v in x.items()}
    x64 = {k: v.double() for k, v in x.items()}  # what the storage holds
    new, f32 = (lambda *s: torch.empty(*s, dtype=dtype, device=device)), torch.float32
    P = triton_cell.sum_slots(B, n)
    main = case.scale != "none"
    buf = dict(act=new(B, 4, n), xhat=new(B, 4, n), rstd=torch.empty(B, 4, dtype=f32, device=device), c=new(B, n),
               c_mean=torch.empty(B, dtype=f32, device=device), c_rstd=torch.empty(B, dtype=f32, device=device),
               tc=new(B, n), h=new(B, n), dc_prev=new(B, n), dpre=new(B, 4, n),
               dz=new(B, 12, case.n_z) if case.scale == "z" else None,
               **{k: new(B, 4, n) if main else None for k in ("dp1", "dp2", "e1", "e2")},
               **{k: torch.zeros(P, *s, dtype=f32, device=device) for k, s in
                  (("gate_dw", (4, n)), ("gate_db", (4, n)), ("cell_dw", (n,)), ("cell_db", (n,)))},
               d_beta=torch.zeros(P, 4, n, dtype=f32, device=device) if main else None)
    return dict(x=x, x64=x64, buf=buf, main=main)


def forward(step) -> None:
    x, b = step["x"], step["buf"]
    triton_cell.cell_forward(x["p1"], x["p2"], x.get("d"), x.get("z"), x.get("w_d"), x.get("d_bias"), x["c_prev"],
                             x["mask"], x["gate_w"], x["gate_b"], x["cell_w"], x["cell_b"], EPS, b["act"], b["xhat"],
                             b["rstd"], b["c"], b["c_mean"], b["c_rstd"], b["tc"], b["h"])


def backward(step) -> None:
    x, b, main = step["x"], step["buf"], step["main"]
    triton_cell.cell_backward(x["dh"], x["dc"], b["act"], b["tc"], x["c_prev"], b["c"], b["c_mean"], b["c_rstd"],
                              x["mask"], b["xhat"], b["rstd"], x["gate_w"], x["cell_w"], x["p1"] if main else None,
                              x["p2"] if main else None, x.get("d"), x.get("z"), x.get("w_d"), b["dc_prev"],
                              b["dpre"], b["dp1"], b["dp2"], b["e1"], b["e2"], b["dz"], b["gate_dw"], b["gate_db"],
                              b["cell_dw"], b["cell_db"], b["d_beta"])


def reference_h_c(x64: dict):
    """h_t, c_t of one step in float64 (Eq. 12-13, per-gate LN, LN(c), mask): the forward's check."""
    if "z" in x64 or "d" in x64:
        d = x64["d"] if "d" in x64 else torch.einsum("brj,rjn->brn", x64["z"], x64["w_d"])
        pre = x64["d_bias"] + d[:, 8:12] + d[:, 0:4] * x64["p1"] + d[:, 4:8] * x64["p2"]
    else:
        pre = x64["p1"] + x64["p2"]
    def norm(v):
        return (v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + EPS)

    y = norm(pre) * x64["gate_w"] + x64["gate_b"]
    i, f, o, g = torch.sigmoid(y[:, 0]), torch.sigmoid(y[:, 1]), torch.sigmoid(y[:, 3]), torch.tanh(y[:, 2])
    c = f * x64["c_prev"] + i * g * x64["mask"]
    return o * torch.tanh(norm(c) * x64["cell_w"] + x64["cell_b"]), c


def time_in_graph(fn, steps: int, repeats: int) -> float:
    """Microseconds per launch of `fn`, `steps` launches captured in one CUDA graph, median of repeats."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # compiled before capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(steps):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / steps)
    return sorted(times)[len(times) // 2]


def time_eager(fn, launches: int) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(launches):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e6 / launches


def compiled_step(case, dtype_name: str, tiles, batch: int, n: int, device) -> dict:
    """One step of `case` with the (forward, backward) `tiles`, run once forward and once backward (which
    compiles both kernel variants at their first launch); triton_warm.py calls it to fill Triton's cache."""
    with triton_cell.tile_override(forward=tiles[0], backward=tiles[1]):
        step = make_step(case, batch, n, DTYPES[dtype_name], device)
        forward(step)
        backward(step)
    return step


def run_tile(case, dtype_name: str, tiles, args, device) -> dict:
    """One (case, dtype, (forward, backward) tiles): the forward's check against float64, then the timings
    (GPU only)."""
    n = args.dry_n if args.dry_run else case.n
    rec = dict(case=case.name, n=n, n_z=case.n_z, scale=case.scale, dtype=dtype_name, batch=args.batch,
               forward_tile=list(tiles[0]), backward_tile=list(tiles[1]))
    step = compiled_step(case, dtype_name, tiles, args.batch, n, device)
    with triton_cell.tile_override(forward=tiles[0], backward=tiles[1]):
        h, c = reference_h_c(step["x64"])
        b = step["buf"]
        rec["forward_max_err"] = max((b["h"].double() - h).abs().max().item(), (b["c"].double() - c).abs().max().item())
        rec["finite"] = all(bool(torch.isfinite(t.float()).all()) for t in b.values() if t is not None)
        if not args.dry_run:
            for name, fn in (("forward", lambda: forward(step)), ("backward", lambda: backward(step))):
                rec[f"{name}_us_graph"] = time_in_graph(fn, args.steps, args.repeats)
                rec[f"{name}_us_eager"] = time_eager(fn, args.steps)
    return rec


def jit_compiled() -> list:
    """Registers and spills of every kernel variant the JIT compiled in this process (the JIT specialises
    more than the AOT gate does: strides of 1, 16-divisible ints). GPU only; empty under the interpreter."""
    out = []
    for fn in (kernels.cell_forward_kernel, kernels.cell_backward_kernel):
        for cache in getattr(fn, "device_caches", {}).values():
            for key, k in cache[0].items():
                k._init_handles()
                out.append(dict(kernel=fn.__name__, n_regs=k.n_regs, n_spills=k.n_spills, shared=k.metadata.shared,
                                num_warps=k.metadata.num_warps, key=str(key)[:400]))
    return out


def tiles_for(n: int, table_only: bool = False):
    """(forward, backward) tiles to time: the table's pair, then (unless `table_only`) each alternative for
    both kernels."""
    row = kernels.tile_row(n)
    alternatives = () if table_only else kernels.TILE_ALTERNATIVES.get(row.block_h, ())
    pairs = [(row.forward, row.backward)] + [(t, t) for t in alternatives]
    return list(dict.fromkeys(pairs))


def tile_runs(table_only: bool = False) -> list:
    """(case, dtype name, tiles) of every run: the table's tiles of every case and dtype first, then the
    alternatives, so a run cut short by its time budget has timed what the layer uses."""
    runs = [(case, dtype_name, tiles) for case in gate.BENCH_CASES for dtype_name in DTYPES
            for tiles in tiles_for(case.n, table_only)]
    return sorted(runs, key=lambda run: run[2] != tiles_for(run[0].n, True)[0])  # stable: table tiles first


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 128; dry run 3)")
    parser.add_argument("--steps", type=int, default=50, help="launches per CUDA graph")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dry-run", action="store_true", help="CPU, TRITON_INTERPRET=1, tiny sizes, no timings")
    parser.add_argument("--dry-n", type=int, default=20, help="row width of the dry run")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no tile run after this many seconds from the process's start (the rest are "
                             "recorded as skipped)")
    parser.add_argument("--table-tiles", action="store_true",
                        help="the tile table's pair only, no alternatives (gpu_check.sh's dry run; every tile's "
                             "dry run is tests/integration/test_triton_tools.py)")
    args = parser.parse_args(argv)
    args.batch = args.batch or (3 if args.dry_run else 128)
    device = "cpu" if args.dry_run else "cuda"
    start, results, errors, skipped = time.perf_counter(), [], [], []
    for case, dtype_name, tiles in tile_runs(args.table_tiles):
        if args.budget_s is not None and time.perf_counter() - STARTED > args.budget_s:
            skipped.append(dict(case=case.name, dtype=dtype_name, tiles=[list(t) for t in tiles]))
            continue
        try:
            rec = run_tile(case, dtype_name, tiles, args, device)
            results.append(rec)
        except Exception as err:  # recorded; the other parts still run
            rec = dict(case=case.name, dtype=dtype_name, tiles=[list(t) for t in tiles],
                       error=f"{type(err).__name__}: {err}"[:500],
                       where=traceback.format_exc().strip().splitlines()[-3:])
            errors.append(rec)
        print(json.dumps(rec), flush=True)
        write_record(args, argv, dict(parts=results, errors=errors, skipped=skipped), time.perf_counter() - start)
    try:
        compiled = jit_compiled()
        if any(k["n_spills"] for k in compiled):
            errors.append(dict(error="a JIT-compiled kernel spills registers",
                               spilling=[k for k in compiled if k["n_spills"]]))
    except Exception as err:  # the JIT cache's layout is Triton's internal; recorded, not fatal
        compiled = [dict(error=f"{type(err).__name__}: {err}"[:300])]
    write_record(args, argv, dict(parts=results, errors=errors, skipped=skipped, jit_compiled=compiled),
                 time.perf_counter() - start)
    print(f"wrote {args.json}: {len(results)} parts, {len(errors)} errors, {len(skipped)} skipped (time budget)")
    return 1 if errors else 0


def write_record(args, argv, result: dict, seconds) -> None:
    """The run record so far (`result`: parts, errors, skipped, and at the end the JIT's kernels), whole or
    not at all; rewritten after every part."""
    import triton

    command = "python benchmarks/bench_triton_cell.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record = dict(name="bench_triton_cell", **run_record.stamp(
        command, versions=dict(run_record.versions(), triton=triton.__version__), dry_run=args.dry_run,
        wall_seconds=round(seconds, 1), settings=dict(batch=args.batch, steps=args.steps, repeats=args.repeats,
                                                      table_tiles=args.table_tiles, budget_s=args.budget_s),
        result=dict(result, passed=not result["errors"], complete="jit_compiled" in result and not result["skipped"])))
    run_record.write(args.json, record)


if __name__ == "__main__":
    sys.exit(main())
