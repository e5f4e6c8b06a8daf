"""SIGINT / SIGTERM during training (issue 12 §2): the first signal stops the loop after the current update,
which saves a checkpoint; a second one exits at once.

"At once" is `os._exit`, not an exception. A handler's exception surfaces wherever the main thread is, and
the code there may turn it into another error or swallow it: when the signal lands while `torch.save`
writes, its C++ writer reports the SystemExit as a RuntimeError, which fairseq's `torch_persistent_save`
catches and retries 2.5 s later; training went on (the CI run of 2026-12-02 failed so). An exit during a
checkpoint write would also leave its `.tmp` file behind, so a second signal that arrives inside
`writing(path)` exits when that file is complete.

The same signal again within `DUPLICATE_SECONDS` of the first is the same request delivered twice, not a
second one: GNU `timeout -s INT` (without `--foreground`) sends its signal to the command and then to the
command's process group, and the second delivery exited at once, losing the updates since the last
checkpoint. A person who means "exit at once" sends it again after reading the first message.
"""

import contextlib
import os
import signal
import sys
import time

from hyperfairseq.errors import program_name

DUPLICATE_SECONDS = 1.0


class StopRequest:
    """The training loop polls `signum`; `armed=False` (before training starts) makes the first signal exit
    at once, nothing being lost then. `unit` names one step of the loop, `saving` what the stop saves."""

    def __init__(self, armed: bool = True, unit: str = "update", saving: str = "a checkpoint"):
        self.signum, self.armed, self.unit, self.saving = 0, armed, unit, saving
        self._first_at = 0.0
        self._writing, self._pending, self._previous = [], 0, {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self.armed:
            _exit(signum, f"stopped by {name} before training started; nothing was lost")
        elif signum == self.signum and time.monotonic() - self._first_at < DUPLICATE_SECONDS:
            return  # the first request delivered again (GNU timeout's signal to the process group)
        elif not self.signum:
            self.signum, self._first_at = signum, time.monotonic()
            _say(f"{name}: finishing this {self.unit}, then saving {self.saving} (send it again to exit at once)")
        elif self._writing:
            self._pending = signum
            _say(f"{name} again: exiting at once, as soon as {self._writing[-1]} is written in full")
        else:
            _exit(signum, f"{name} again: exiting at once; the {self.unit}s since the last checkpoint are lost")

    @contextlib.contextmanager
    def writing(self, path: str):
        """Around the write of one checkpoint file: a second signal inside exits when the write is over."""
        name = os.path.basename(str(path))
        self._writing.append(name)
        try:
            yield
        finally:
            self._writing.pop()
        if self._pending and not self._writing:  # not reached when the write failed: its error is reported
            _exit(self._pending, f"{name} is written; exiting")


def _say(message: str) -> None:
    print(f"{program_name()}: {message}", file=sys.stderr, flush=True)


def _exit(signum: int, message: str) -> None:
    _say(message)
    sys.stdout.flush()
    os._exit(128 + signum)
