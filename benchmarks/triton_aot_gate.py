"""AOT compile gate of the Triton cell kernels (`hyperfairseq/modules/triton_kernels.py`) for the H200.

Compiles every kernel and tile choice at the paper's sizes for sm_90 with Triton's bundled ptxas (no GPU,
no torch), once per Triton version, and fails on a compile error, on register spills (`STACK` or
`LOCAL` > 0 in `cuobjdump --dump-resource-usage`) or on shared memory above the H200's 232,448 bytes.

    python benchmarks/triton_aot_gate.py --json docs/runs/triton_aot_gate.json     # everything, both versions
    python benchmarks/triton_aot_gate.py --configs ci                              # the corners (the CI test)

What changes the compiled code, and so what is compiled: the kernel (forward, backward); BLOCK_H (the row
width rounded up to a power of two: the main rows 1000 -> 1024, 1250/1800/2000/2048 -> 2048; the hyper rows
128/256/512); how d arrives (main cell: computed from z, N_z 4 and 16, one compiled kernel as N_z is a
runtime loop bound; given, N_z 64; none: the hyper cell and the LSTM baselines); LN on/off; dropout mask
on/off; fp32 or bf16 storage (statistics and accumulators fp32; fp16 storage, which `--amp` and `--fp16` use, at
the corners below); the tile (rows per program, warps): the table's choice for every combination, the
microbenchmark's alternatives for its cases. `--configs ci`
compiles, in bf16 storage, the most demanding flags (LN, mask, the heaviest d mode) of every kernel and
BLOCK_H with the table's tile (10 per version, ~2 minutes on 2 cores); the full run's record holds every
configuration with the kernels' source hash, and the CI test checks that it is current.

By default the script runs itself under this interpreter and under `.venv-triton36/bin/python` (triton
3.6.0, the GPU machine's version; `.ci/run` creates it); `--python` names others.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
KERNELS_FILE = REPO / "hyperfairseq" / "modules" / "triton_kernels.py"
TRITON36 = REPO / ".venv-triton36" / "bin" / "python"
SHARED_LIMIT = 232_448  # bytes of shared memory per block on sm_90 (H100/H200)
HYPER_WIDTHS = (128, 256, 512)  # N_ĥ of the paper's rows
MAIN_WIDTHS = (1000, 1250, 1800, 2000, 2048)  # N_h of the paper's rows (Tables 3-4)
class BenchCase(NamedTuple):
    """A microbenchmark case (benchmarks/bench_triton_cell.py): a paper row's cell, LN and dropout on."""

    name: str
    n: int
    scale: str  # "none" (hyper cell) / "z" / "d"
    n_z: int


BENCH_CASES = (BenchCase("ptb_main", 1000, "z", 4), BenchCase("ptb_hyper", 128, "none", 0),
               BenchCase("enwik8_main", 1800, "d", 64), BenchCase("enwik8_hyper", 256, "none", 0))
STAT_POINTERS = {"rs_ptr", "cm_ptr", "cr_ptr", "gdw_ptr", "gdb_ptr", "cdw_ptr", "cdb_ptr", "pb_ptr"}


def load_kernels():
    """The kernels' module by file path (importing the package would import torch and fairseq), with the
    sha256 of the source it was made from."""
    source = KERNELS_FILE.read_bytes()
    spec = importlib.util.spec_from_file_location("hyperfairseq_triton_kernels", KERNELS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SOURCE_SHA256 = hashlib.sha256(source).hexdigest()
    return module


class Config(NamedTuple):
    """One compilation: kernel, storage, row width, d mode, flags, tile."""

    kernel: str  # "forward" / "backward"
    dtype: str  # "fp32" / "bf16" / "fp16"
    block_h: int
    scale: str  # "none" / "z" / "d"
    ln: bool
    mask: bool
    block_b: int
    num_warps: int


def _widths(K):
    """(BLOCK_H, d modes) of the paper's rows: hyper cells have no d; main cells all three modes."""
    return [(w, ("none",)) for w in sorted({K.block_h_of(n) for n in HYPER_WIDTHS})] + \
           [(w, ("none", "z", "d")) for w in sorted({K.block_h_of(n) for n in MAIN_WIDTHS})]


def all_configs(K, which: str = "all"):
    """The configurations to compile: `all` (the full matrix) or `ci` (the corners, module docstring)."""
    out = []
    for block_h, scales in _widths(K):
        row = K.tile_row(block_h)
        for kernel in ("forward", "backward"):
            table = row.backward if kernel == "backward" else row.forward
            # the corner: the heaviest flags (LN, mask, d = z W_d where it exists) with the table's tile
            corner = Config(kernel, "bf16", block_h, "z" if "z" in scales else "none", True, True, *table)
            if which == "ci":  # in bf16 storage
                out.append(corner)
                continue
            out.append(corner._replace(dtype="fp16"))  # fp16 storage (--amp, --fp16): the corners only
            for dtype in ("fp32", "bf16"):
                for scale in scales:
                    for ln in (False, True):
                        for mask in (False, True):
                            out.append(Config(kernel, dtype, block_h, scale, ln, mask, *table))
                for case in BENCH_CASES:
                    if K.block_h_of(case.n) == block_h:
                        out += [Config(kernel, dtype, block_h, case.scale, True, True, *t)
                                for t in K.TILE_ALTERNATIVES.get(block_h, ()) if tuple(t) != tuple(table)]
    return list(dict.fromkeys(out))


def _signature(fn, consts: dict, dtype: str):
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32" if (name in STAT_POINTERS or dtype == "fp32") else f"*{dtype}"
            attrs[(i,)] = [["tt.divisibility", 16]]  # 16-byte aligned, as the caching allocator's buffers
        else:
            sig[name] = "i32"
    return sig, attrs


def _resources(triton, cubin: bytes) -> dict:
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)", out)
    if m is None:
        raise RuntimeError(f"cuobjdump printed no resource line: {out.strip()[-300:]}")
    return dict(zip(("regs", "stack", "static_shared", "local"), map(int, m.groups())))


def compile_one(cfg: Config) -> dict:
    """Compile one configuration for sm_90; returns its resources and whether it passes the gate."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    K = _KERNELS
    fn = K.cell_forward_kernel if cfg.kernel == "forward" else K.cell_backward_kernel
    consts = dict(SCALE={"none": K.SCALE_NONE, "z": K.SCALE_Z, "d": K.SCALE_D}[cfg.scale], HAS_MASK=cfg.mask,
                  LN=cfg.ln, ACC=triton.language.float32, JC=K.Z_CHUNK, BLOCK_B=cfg.block_b, BLOCK_H=cfg.block_h)
    if cfg.kernel == "forward":
        consts.update(EPS=1e-3 if cfg.ln else 0.0, HAS_P2=True)
    rec = dict(cfg._asdict(), triton=triton.__version__)
    start = time.perf_counter()
    try:
        sig, attrs = _signature(fn, consts, cfg.dtype)
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs),
                           target=GPUTarget("cuda", 90, 32),
                           options=dict(num_warps=cfg.num_warps, maxnreg=K.max_registers(cfg.num_warps)))
        rec.update(_resources(triton, k.asm["cubin"]), shared=int(k.metadata.shared))
        problems = [f"{key} {rec[key]} > 0 (register spills)" for key in ("stack", "local") if rec[key] > 0]
        if rec["shared"] + rec["static_shared"] > SHARED_LIMIT:
            problems.append(f"shared memory {rec['shared'] + rec['static_shared']} > {SHARED_LIMIT}")
        rec.update(ok=not problems, error="; ".join(problems) or None)
    except Exception as err:  # a compile error is a gate failure, reported with its last line
        last = (str(err).strip().splitlines() or [""])[-1][:300]
        rec.update(ok=False, error=f"{type(err).__name__}: {last}")
    rec["seconds"] = round(time.perf_counter() - start, 2)
    return rec


_KERNELS = None


def worker(which: str, jobs: int) -> int:
    """Compile every configuration with this interpreter's triton; one JSON line per configuration."""
    global _KERNELS
    os.environ.pop("TRITON_INTERPRET", None)  # compile for the GPU, not for the interpreter
    _KERNELS = load_kernels()
    configs = all_configs(_KERNELS, which)
    print(json.dumps(dict(kernel_source_sha256=_KERNELS.SOURCE_SHA256)), flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for rec in pool.map(compile_one, configs):
            print(json.dumps(rec), flush=True)
    return 0


def run_version(python: str, which: str, jobs: int, timeout: float, expected_source: str) -> list:
    """This script's worker under `python`; its records (or one failed record saying why there are none)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    try:
        proc = subprocess.run([python, __file__, "--worker", "--configs", which, "--jobs", str(jobs)],
                              capture_output=True, text=True, env=env, timeout=timeout)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        sources = {line.pop("kernel_source_sha256") for line in lines if "kernel_source_sha256" in line}
        lines = [line for line in lines if line]
        if sources != {expected_source}:
            return lines + [dict(python=python, ok=False, error=f"the worker compiled kernels {sources}, "
                                                                  f"not {expected_source}: the file changed")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return lines + [dict(python=python, ok=False, error=f"worker exited {proc.returncode}: {tail}")]
        return lines
    except (OSError, subprocess.TimeoutExpired) as err:
        return [dict(python=python, ok=False, error=f"{type(err).__name__}: {err}")]


def _run_record_module():
    spec = importlib.util.spec_from_file_location("hyperfairseq_run_record", REPO / "hyperfairseq" / "run_record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarise(records: list) -> dict:
    by_version = {}
    for rec in records:
        v = by_version.setdefault(rec.get("triton", rec.get("python", "?")), dict(compiled=0, failed=[], max_regs=0))
        v["compiled"] += 1
        v["max_regs"] = max(v["max_regs"], rec.get("regs", 0))
        if not rec["ok"]:
            v["failed"].append({k: rec.get(k) for k in ("kernel", "dtype", "block_h", "scale", "ln", "mask",
                                                         "block_b", "num_warps", "error", "python")})
    return dict(passed=all(r["ok"] for r in records), by_version=by_version)


def write_record(path: Path, args, records: list, seconds: float, source: str, commit: str) -> None:
    rr = _run_record_module()
    record = dict(name="triton_aot_gate", command="python benchmarks/triton_aot_gate.py " + " ".join(args),
                  commit=commit, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  hardware=rr.hardware(), versions=rr.versions(), wall_seconds=round(seconds, 1),
                  kernel_source_sha256=source, target="cuda sm_90 (H200), warp size 32",
                  shared_limit_bytes=SHARED_LIMIT, result=summarise(records), kernels=records)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", choices=("all", "ci"), default="all")
    parser.add_argument("--python", nargs="*", default=None,
                        help="interpreters to compile with (default: this one and .venv-triton36/bin/python)")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per Triton version")
    parser.add_argument("--json", type=Path, default=None, help="write the run record here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.configs, args.jobs)
    pythons = args.python or [sys.executable] + ([str(TRITON36)] if TRITON36.exists() else [])
    start, records, source = time.perf_counter(), [], load_kernels().SOURCE_SHA256
    commit = _run_record_module().git_commit(REPO)  # at the start, with the source the workers read
    # the versions side by side: each worker reads the kernels' file once, at its start
    jobs = max(1, args.jobs // len(pythons))
    with ThreadPoolExecutor(max_workers=len(pythons)) as pool:
        for part in pool.map(lambda py: run_version(py, args.configs, jobs, args.timeout, source), pythons):
            records += part
    summary = summarise(records)
    for version, v in summary["by_version"].items():
        print(f"triton {version}: {v['compiled']} compiled, {len(v['failed'])} failed, max {v['max_regs']} registers")
        for fail in v["failed"]:
            print("  FAILED", json.dumps(fail))
    if args.json:
        write_record(args.json, argv if argv is not None else sys.argv[1:], records, time.perf_counter() - start,
                     source, commit)
        print(f"wrote {args.json}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
