"""The robustness suite's machinery (issue 12 §5): run one case through a real entry point, classify
what happened, record it.

A `Case` is an input (files made by `setup`, command-line arguments) given to one entry point, with
what must happen: `expect="error"` (a clean error whose message contains `message`; exit status
`exit_code` when given) or `expect="ok"` (success, and `check` finds the result right). Whatever the
expectation, the files in `protect` must be unchanged afterwards and nothing half-written may be left
(no `*.tmp*` file under the case's folder, none of the paths in `absent`).

Entry points run in this process when that is faithful (our module CLIs' `main`, fairseq's `cli_main`
with `sys.argv` set; an uncaught exception is reported exactly as the plugin's excepthook reports it
in a real process), and as real processes where process state matters (fairseq-train, signals,
shell scripts). `classify` names the outcome:

    correct               an "ok" case succeeded and its check passed
    clean error           an "error" case failed with the expected message and no traceback
    unclear error         the expected message (or exit status) is missing, or an "ok" case was refused
    traceback             a Python traceback reached the user
    silent wrong result   exit status 0 where an error was due, or an "ok" case's check failed
    data loss             a protected file changed or vanished
    half-written output   a temporary file or a partial output was left behind
    code executed         a crafted checkpoint ran its payload (its marker file appeared)

`RESULTS` collects one record per case; tests/robustness/conftest.py writes them to
$HYPERFAIRSEQ_ROBUSTNESS_RESULTS, from which tests/robustness/report.py makes docs/robustness.md.
"""

import contextlib
import hashlib
import io
import logging
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

try:  # the suite also classifies an older checkout, which lacks the module (see report.py --before)
    from hyperfairseq.errors import input_error_in, one_line
except ImportError:  # pragma: no cover
    input_error_in, one_line = (lambda exc: None), str

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = ("correct", "clean error", "unclear error", "traceback", "silent wrong result", "data loss",
            "half-written output", "code executed")
RESULTS: List[dict] = []


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    traceback: bool = False


@dataclass
class Case:
    id: str
    entry: Union[str, Callable]  # a key of RUNNERS, or a callable(env, argv) -> Result
    args: Union[Sequence, Callable] = ()
    expect: str = "error"
    message: str = ""
    setup: Optional[Callable] = None
    check: Optional[Callable] = None  # (env, result) -> None if right, else what is wrong
    protect: Callable = lambda env: []
    absent: Callable = lambda env: []
    markers: Callable = lambda env: []  # files a crafted input's payload would create
    exit_code: Optional[int] = None
    env_vars: Dict[str, str] = field(default_factory=dict)
    input: str = ""  # one line saying what the bad input is, for the report


class Env:
    """The case's folder (`work`) and the shared real-data assets, built on first use (`resolve(name)`)."""

    def __init__(self, work: Path, resolve: Callable[[str], object]):
        self.work, self._resolve = work, resolve

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._resolve(name)
        setattr(self, name, value)
        return value


# -- running ---------------------------------------------------------------------------------------


def in_process(fn: Callable, prog: str, argv: Sequence[str], env_vars: Dict[str, str]) -> Result:
    """Run `fn()` with sys.argv = [prog, *argv]; report exceptions as a real process would."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    root = logging.getLogger()
    # a real fairseq CLI process logs at INFO (its module's logging.basicConfig); in this process that call
    # was a no-op if any handler existed when the module was first imported, so set the level it would have
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # and no logger is disabled in a fresh process (a logging.config call in an earlier test may have)
    disabled = [lg for lg in logging.root.manager.loggerDict.values() if getattr(lg, "disabled", False)]
    for lg in disabled:
        lg.disabled = False
    saved_argv, saved_env = sys.argv, dict(os.environ)
    sys.argv = [prog, *map(str, argv)]
    os.environ.update(env_vars)
    rc, seen_traceback = 0, False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = fn() or 0
    except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):
            err.write(code + "\n")
        rc = code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # what a real process would print for it
        error = input_error_in(exc)
        if error is not None:
            err.write(one_line(error) + "\n")
        else:
            err.write(traceback.format_exc())
            seen_traceback = True
        rc = 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for lg in disabled:
            lg.disabled = True
    text = err.getvalue()
    return Result(rc, out.getvalue(), text, seen_traceback or "Traceback (most recent call last)" in text)


def process(cmd: Sequence[str], env_vars: Dict[str, str], timeout: int = 300, cwd: Path = REPO) -> Result:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **env_vars}
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr, "Traceback (most recent call last)" in proc.stderr)


def module_main(module: str, prog: str):
    def run(argv, env_vars):
        import importlib

        main = importlib.import_module(module).main
        return in_process(lambda: main(list(map(str, argv))), prog, argv, env_vars)

    return run


def fairseq_cli(name: str, prog: str):
    def run(argv, env_vars):
        import importlib

        return in_process(importlib.import_module(f"fairseq_cli.{name}").cli_main, prog, argv, env_vars)

    return run


def python_process(*prefix: str):
    return lambda argv, env_vars: process([sys.executable, *prefix, *argv], env_vars)


RUNNERS = {
    "sample": module_main("hyperfairseq.sample", "python -m hyperfairseq.sample"),
    "sample_handwriting": module_main("hyperfairseq.sample_handwriting", "python -m hyperfairseq.sample_handwriting"),
    "analysis": module_main("hyperfairseq.analysis.__main__", "python -m hyperfairseq.analysis"),
    "char_corpus": module_main("hyperfairseq.data.char_corpus", "python -m hyperfairseq.data.char_corpus"),
    "byte_corpus": module_main("hyperfairseq.data.byte_corpus", "python -m hyperfairseq.data.byte_corpus"),
    "iam_ondb": module_main("hyperfairseq.data.iam_ondb", "python -m hyperfairseq.data.iam_ondb"),
    "kanjivg": module_main("hyperfairseq.data.kanjivg", "python -m hyperfairseq.data.kanjivg"),
    "lasa": module_main("hyperfairseq.data.lasa", "python -m hyperfairseq.data.lasa"),
    "hershey": module_main("hyperfairseq.data.hershey", "python -m hyperfairseq.data.hershey"),
    "iam_transcripts": module_main("hyperfairseq.data.iam_transcripts", "python -m hyperfairseq.data.iam_transcripts"),
    "sword": module_main("hyperfairseq.data.sword", "python -m hyperfairseq.data.sword"),
    "run_record": module_main("hyperfairseq.run_record", "python -m hyperfairseq.run_record"),
    "eval_lm": fairseq_cli("eval_lm", "fairseq-eval-lm"),
    "validate": fairseq_cli("validate", "fairseq-validate"),
    "generate": fairseq_cli("generate", "fairseq-generate"),
    "train_setup": fairseq_cli("train", "fairseq-train"),  # in-process: only cases that stop before training
    "train": python_process("-m", "fairseq_cli.train"),
    "eval_lm_process": python_process("-m", "fairseq_cli.eval_lm"),
    "vision_process": python_process(str(REPO / "examples/hyper_resnet/train.py")),
}


def vision(argv, env_vars):
    sys.path.insert(0, str(REPO / "tests"))
    import vision_fixtures

    train = vision_fixtures.load_train_module()
    return in_process(lambda: train.main(list(map(str, argv))), "train.py", argv, env_vars)


RUNNERS["vision"] = vision


# -- classifying -----------------------------------------------------------------------------------


def fingerprint(paths: Sequence[Path]) -> Dict[str, Optional[str]]:
    """md5 of every file under `paths` (None for a missing path)."""
    prints = {}
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            prints[str(f)] = hashlib.md5(f.read_bytes()).hexdigest() if f.exists() else None
    return prints


def leftovers(env: Env, case: Case) -> List[str]:
    found = [str(p) for p in Path(env.work).rglob("*") if ".tmp" in p.name]
    return found + [str(p) for p in map(Path, case.absent(env)) if p.exists()]


def classify(case: Case, env: Env, result: Result, before: Dict[str, Optional[str]]) -> (str, str):
    """(outcome, detail) of a finished case; the worst thing that happened decides."""
    after = fingerprint([Path(p) for p in before])
    if after != before:
        return "data loss", f"changed or removed: {[p for p, h in after.items() if before.get(p) != h][:3]}"
    ran = [str(m) for m in case.markers(env) if Path(m).exists()]
    if ran:
        return "code executed", f"payload marker {ran[0]} exists"
    if result.traceback:
        return "traceback", result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    if case.expect == "error" and result.rc == 0:
        return "silent wrong result", "exit status 0"
    if leftovers(env, case):
        return "half-written output", f"left behind: {leftovers(env, case)[:3]}"
    if case.expect == "error":
        if case.exit_code is not None and result.rc != case.exit_code:
            return "unclear error", f"exit status {result.rc}, expected {case.exit_code}"
        if case.message not in result.stderr:
            return "unclear error", f"no {case.message!r} in: {error_line(result)!r}"
        wrong = case.check(env, result) if case.check else None  # what an error case must also have done
        return ("silent wrong result", wrong) if wrong else ("clean error", error_line(result))
    if result.rc != (case.exit_code or 0):
        return "unclear error", f"exit status {result.rc}: {error_line(result)!r}"
    wrong = case.check(env, result) if case.check else None
    if wrong:
        return "silent wrong result", wrong
    return "correct", (result.stdout.strip().splitlines() or [""])[-1][:200]


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if "error" in line.lower() or "nothing to do" in line]
    return (lines or result.stderr.strip().splitlines() or [""])[-1][:300]


def run_case(case: Case, env: Env) -> (str, str, Result):
    if case.setup is not None:
        case.setup(env)
    before = fingerprint([Path(p) for p in case.protect(env)])
    argv = case.args(env) if callable(case.args) else case.args
    try:
        if callable(case.entry):
            result = case.entry(env, argv)
        else:
            result = RUNNERS[case.entry](list(map(str, argv)), case.env_vars)
        outcome, detail = classify(case, env, result, before)
    except Exception as exc:  # the fault could not be staged (e.g. an older checkout has no test hook)
        record(case, "not staged", None, f"{type(exc).__name__}: {exc}"[:300])
        raise
    record(case, outcome, result.rc, detail)
    return outcome, detail, result


def record(case: Case, outcome: str, rc: Optional[int], detail: str) -> None:
    RESULTS.append({"id": case.id, "entry": case.entry if isinstance(case.entry, str) else case.entry.__name__,
                    "input": case.input, "expect": case.expect, "outcome": outcome, "exit_status": rc,
                    "detail": detail})


def expected_outcome(case: Case) -> str:
    return "clean error" if case.expect == "error" else "correct"
