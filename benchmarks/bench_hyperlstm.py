r"""Forward+backward speed, saved-for-backward bytes and one-step latency of the HyperLSTM fast path.

Every variant runs side by side in one process, interleaved repeat by repeat; the figures are medians
and the ratios are taken against nn.LSTM of the same hidden size and input (paper-spec §7 of
fairseq-notes for the anchors). Training mode, recurrent dropout 0, T = 100. The memory figures (bytes
saved for backward, CUDA peak of one fwd+bwd) come from a separate call with our layers eager
(`eager_layers`): a CUDA-graph plan's buffers are allocated before any measured call.

    python benchmarks/bench_hyperlstm.py --device cpu --threads 1 --clock process \
        --json docs/runs/bench_hyperlstm_cpu.json
    python benchmarks/bench_hyperlstm.py --device cuda --dtype bfloat16 --json out.json
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch
from torch import nn

from hyperfairseq import run_record
from hyperfairseq.modules import HyperLSTM, kernels
from hyperfairseq.modules.cuda_graphs import GRAPHS_ENV

SIZES = {  # name: (input N_x, hidden N_h, hyper N_ĥ, N_z)
    "ptb": (64, 1000, 128, 4),
    "enwik8": (64, 1800, 256, 64),
    "tiny": (8, 16, 8, 4),  # the dry run of gpu_check.sh (code paths only, no speed claim)
}


class CellLoop(nn.Module):
    """nn.LSTMCell in a Python loop (fairseq's lstm_lm does this)."""

    def __init__(self, n_x, n_h):
        super().__init__()
        self.cell = nn.LSTMCell(n_x, n_h)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size)
        outs = []
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
            outs.append(h)
        return torch.stack(outs)


def make_variants(size, device, dtype, with_reference):
    n_x, n_h, n_hat, n_z = SIZES[size]

    def ours(ln, use_hyper=True, fast=True):
        return HyperLSTM(n_x, n_h, 1, n_hat, n_z, use_hyper=use_hyper, layer_norm=ln, fast=fast)

    variants = {
        "nn.LSTM": nn.LSTM(n_x, n_h),
        "LSTMCell loop": CellLoop(n_x, n_h),
        "HyperLSTM": ours(False),
        "LN-HyperLSTM": ours(True),
        "LSTM (ours)": ours(False, use_hyper=False),  # the baselines on the same kernels (issue 13 §2.3)
        "LN-LSTM (ours)": ours(True, use_hyper=False),
    }
    if with_reference:
        variants["HyperLSTM (reference)"] = ours(False, fast=False)
        variants["LN-HyperLSTM (reference)"] = ours(True, fast=False)
    return {k: v.to(device=device, dtype=dtype).train() for k, v in variants.items()}


def output_of(module, x):
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


CLOCK = time.perf_counter  # --clock process: CPU time of this process (robust to a shared, loaded CPU)


def time_train_step(module, x, device):
    sync(device)
    start = CLOCK()
    out = output_of(module, x)
    out.float().sum().backward()
    sync(device)
    return CLOCK() - start


@contextlib.contextmanager
def eager_layers():
    """Our layers launched eagerly inside (HYPERFAIRSEQ_CUDA_GRAPHS=0), for the memory figures. A CUDA-graph
    plan allocates its buffers (the activations kept for backward among them) once, before any measured
    call, replays out of the graph's private pool and hands autograd nothing to save, so under plans both
    the peak of a call and the bytes saved for backward would leave those buffers out; eagerly every buffer
    of a call is allocated within it and saved through autograd, as on CPU and as for nn.LSTM."""
    before = os.environ.get(GRAPHS_ENV)
    os.environ[GRAPHS_ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(GRAPHS_ENV)
        else:
            os.environ[GRAPHS_ENV] = before


def saved_bytes(module, x):
    """Bytes of distinct storages saved for backward (parameters included), via saved_tensors_hooks."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), t.device)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = output_of(module, x)
    del out
    return sum(seen.values())


def peak_memory(module, x, device):
    """Peak CUDA bytes one fwd+bwd allocates above what was allocated before it (None on CPU)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    output_of(module, x).float().sum().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def bench_throughput(size, batch, steps, repeats, device, dtype, with_reference):
    variants = make_variants(size, device, dtype, with_reference)
    x = torch.randn(steps, batch, SIZES[size][0], device=device, dtype=dtype, requires_grad=True)
    times = {k: [] for k in variants}
    for module in variants.values():  # warm-up
        time_train_step(module, x, device)
    for _ in range(repeats):
        for name, module in variants.items():
            times[name].append(time_train_step(module, x, device))
            module.zero_grad(set_to_none=True)
    tokens = steps * batch
    rows = {}
    for name, module in variants.items():
        median = statistics.median(times[name])
        with eager_layers():
            memory = {"saved_bytes": saved_bytes(module, x), "peak_bytes": peak_memory(module, x, device)}
        rows[name] = {"tokens_per_s": tokens / median, "seconds": times[name], **memory}
    lstm = rows["nn.LSTM"]
    for row in rows.values():
        row["speed_vs_nn_lstm"] = row["tokens_per_s"] / lstm["tokens_per_s"]
        row["saved_bytes_vs_nn_lstm"] = row["saved_bytes"] / lstm["saved_bytes"]
    return rows


@torch.no_grad()
def bench_one_step(size, batch, repeats, device, dtype):
    """Latency of one incremental step (T = 1, eval, state carried) against an LSTMCell step."""
    n_x, n_h, n_hat, n_z = SIZES[size]
    cell = nn.LSTMCell(n_x, n_h).to(device=device, dtype=dtype).eval()
    rnns = {
        "HyperLSTM": HyperLSTM(n_x, n_h, 1, n_hat, n_z).to(device=device, dtype=dtype).eval(),
        "LN-HyperLSTM": HyperLSTM(n_x, n_h, 1, n_hat, n_z, layer_norm=True).to(device=device, dtype=dtype).eval(),
    }
    x = torch.randn(1, batch, n_x, device=device, dtype=dtype)
    hc = (x.new_zeros(batch, n_h), x.new_zeros(batch, n_h))
    states = {k: m.zero_state(batch, x) for k, m in rnns.items()}
    runs = {"LSTMCell": lambda: cell(x[0], hc)}
    for k, m in rnns.items():
        runs[k] = lambda m=m, k=k: m(x, states[k])
    times = {k: [] for k in runs}
    for _ in range(3):
        for f in runs.values():
            f()
    for _ in range(repeats):
        for k, f in runs.items():
            sync(device)
            start = CLOCK()
            f()
            sync(device)
            times[k].append(CLOCK() - start)
    cell_ms = statistics.median(times["LSTMCell"]) * 1e3
    return {k: {"ms": statistics.median(v) * 1e3, "vs_lstmcell": statistics.median(v) * 1e3 / cell_ms}
            for k, v in times.items()}


def _time_replays(fn, device, repeats=50) -> float:
    """Seconds per call of `fn`: inside a CUDA graph replayed `repeats` times on CUDA, eagerly on CPU."""
    fn()
    if device == "cuda":
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            for _ in range(10):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            graph.replay()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / (10 * repeats)
    start = CLOCK()
    for _ in range(repeats):
        fn()
    return (CLOCK() - start) / repeats


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise")


def profile_ops(size, batch, steps, dtype, repeats=2):
    """Where a CPU train step's time goes (forward and backward of T steps): self time per operator
    (torch.profiler, ms per train step), grouped into our cell kernels (hyperfairseq::*), GEMMs and the rest,
    for every variant but the Python cell loop. CPU only: on CUDA the time lies in kernel events (Triton and
    cuBLAS kernel names, inside graph replays), which these groups do not name; the GPU check's micro stage
    times the per-step GEMMs and row kernels instead."""
    from torch.profiler import ProfilerActivity, profile

    variants = make_variants(size, "cpu", dtype, False)
    variants.pop("LSTMCell loop")
    x = torch.randn(steps, batch, SIZES[size][0], dtype=dtype, requires_grad=True)
    rows = {}
    for name, module in variants.items():
        time_train_step(module, x, "cpu")  # warm-up: kernels built, plans and workspaces made
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                time_train_step(module, x, "cpu")
        module.zero_grad(set_to_none=True)
        ops = {e.key: e.self_cpu_time_total / repeats / 1e3 for e in prof.key_averages()}
        ops = {k: v for k, v in sorted(ops.items(), key=lambda kv: -kv[1]) if v > 0}
        groups = {"cell kernels": sum(v for k, v in ops.items() if k.startswith("hyperfairseq::")),
                  "gemm": sum(v for k, v in ops.items() if k in GEMM_OPS)}
        groups["other"] = sum(ops.values()) - sum(groups.values())
        rows[name] = {"ms_per_train_step": groups, "top_ops_ms": dict(list(ops.items())[:8])}
    return rows


def bench_micro(size, batch, device):
    """The per-step GEMM G = h [W_h; Ŵ_x,h]ᵀ in fp32 (TF32 off / on) and bf16, and the launch floor (a
    one-element add), each per call inside a CUDA graph: the decision rules of gpu-design §5."""
    n_x, n_h, n_hat, n_z = SIZES[size]
    rows = {}
    for label, dtype, tf32 in (("gemm fp32", torch.float32, False), ("gemm tf32", torch.float32, True),
                               ("gemm bf16", torch.bfloat16, False)):
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
        h = torch.randn(batch, n_h, device=device, dtype=dtype)
        w_t = torch.randn(n_h, 4 * (n_h + n_hat), device=device, dtype=dtype)
        out = torch.empty(batch, 4 * (n_h + n_hat), device=device, dtype=dtype)
        sec = _time_replays(lambda: torch.mm(h, w_t, out=out), device)
        rows[label] = {"us": sec * 1e6, "tflops": 2 * batch * n_h * w_t.shape[1] / sec / 1e12}
    one = torch.zeros(1, device=device)
    rows["launch floor (1-element add)"] = {"us": _time_replays(lambda: one.add_(1.0), device) * 1e6}
    return rows


def hardware(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{run_record.cpu_model()}, {torch.get_num_threads()} thread(s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--sizes", default="ptb,enwik8")
    parser.add_argument("--batches", default="32,128")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step-repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--with-reference", action="store_true", help="also time the reference loop")
    parser.add_argument("--no-tf32", action="store_true", help="CUDA: full fp32 matmuls (default TF32)")
    parser.add_argument("--clock", default="wall", choices=["wall", "process"],
                        help="process: CPU time of this process (use with --threads 1 on a shared CPU)")
    parser.add_argument("--micro-only", action="store_true",
                        help="only the per-step GEMM and launch-floor micro timings")
    parser.add_argument("--no-one-step", action="store_true", help="skip the one-step latency")
    parser.add_argument("--profile", action="store_true",
                        help="also the self time per operator of a train step (cell kernels, GEMMs, the rest); CPU")
    parser.add_argument("--json", default=None, help="write the results here")
    return parser


def _configure(args) -> None:
    """The clock, threads and (CUDA) TF32 setting every timing of this run uses."""
    global CLOCK
    CLOCK = time.process_time if args.clock == "process" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32


def _run_micro(result: dict, args, sizes, save) -> None:
    result["micro"] = {}
    for size in sizes:
        for batch in map(int, args.batches.split(",")):
            key = f"{size}/B{batch}"
            result["micro"][key] = rows = bench_micro(size, batch, args.device)
            for name, row in rows.items():
                print(f"micro {key:12s} {name:30s} {row['us']:9.2f} us", flush=True)
            save()


def _run_throughput(result: dict, args, sizes, dtype, save) -> None:
    """fwd+bwd tokens/s of every variant against nn.LSTM (and, with --profile, the self time per operator)."""
    for size in sizes:
        for batch in map(int, args.batches.split(",")):
            key = f"{size}/B{batch}"
            rows = bench_throughput(size, batch, args.steps, args.repeats, args.device, dtype, args.with_reference)
            result["throughput"][key] = rows
            for name, row in rows.items():
                print(f"{key:12s} {name:26s} {row['tokens_per_s']:10.0f} tok/s  x{row['speed_vs_nn_lstm']:.2f}  "
                      f"saved {row['saved_bytes'] / 2**20:8.1f} MiB  x{row['saved_bytes_vs_nn_lstm']:.2f}", flush=True)
            if args.profile:
                result["profile"][key] = profile_ops(size, batch, args.steps, dtype)
                for name, row in result["profile"][key].items():
                    print(f"{key:12s} {name:26s} " + "  ".join(f"{g} {ms:8.1f} ms" for g, ms in
                                                              row["ms_per_train_step"].items()), flush=True)
            save()


def _run_one_step(result: dict, args, dtype, save) -> None:
    for batch in (1, 32):
        key = f"ptb/B{batch}"
        result["one_step"][key] = bench_one_step("ptb", batch, args.step_repeats, args.device, dtype)
        for name, row in result["one_step"][key].items():
            print(f"one step {key:8s} {name:14s} {row['ms']:8.3f} ms  x{row['vs_lstmcell']:.2f}", flush=True)
        save()


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile and args.device != "cpu":
        parser.error("--profile groups CPU operators; on CUDA the micro stage (--micro-only) times the parts")
    _configure(args)
    dtype = getattr(torch, args.dtype)
    sizes = [k for k in args.sizes.split(",") if k]  # --sizes "": one-step latency only
    torch.manual_seed(0)
    command = " ".join(["python benchmarks/bench_hyperlstm.py", *(argv if argv is not None else sys.argv[1:])])
    result = run_record.stamp(
        command, device=args.device, hardware=hardware(args.device), torch=torch.__version__,
        threads=torch.get_num_threads(), dtype=args.dtype, clock=args.clock,
        tf32=args.device == "cuda" and not args.no_tf32, steps=args.steps, repeats=args.repeats,
        sizes={k: dict(zip(("input", "hidden", "hyper", "n_z"), SIZES[k])) for k in sizes},
        throughput={}, one_step={}, profile={} if args.profile else None,
        kernels=getattr(kernels.kernels_for(torch.device(args.device)), "name", None),
        memory=f"saved_bytes and peak_bytes of one call with our layers eager ({GRAPHS_ENV}=0): every buffer "
               "allocated within the call and saved through autograd (timings use the CUDA-graph plans)",
        cpu_gemm=kernels.cpu_gemm_libraries() if args.device == "cpu" else None, complete=False,
    )

    def save() -> None:  # after every size: a run cut short by its time limit keeps the sizes it measured
        if args.json:
            run_record.write(args.json, result)

    if args.micro_only:
        _run_micro(result, args, sizes, save)
    else:
        _run_throughput(result, args, sizes, dtype, save)
        if not args.no_one_step:
            _run_one_step(result, args, dtype, save)
    result["complete"] = True
    save()
    return result


if __name__ == "__main__":
    main()
