"""fairseq-train whose checkpoint copies stall (test_training.py's SIGKILL mid-copy case; no part of the package).

`python stalled_copy_train.py MARKER ARGS...` runs `fairseq-train ARGS` with the plugin's atomic copy
(`fairseq_patches._copy_file`) replaced: a copy that replaces an existing file writes the first 64 KiB of
its `.tmp`, creates MARKER and waits, so that the test kills the process mid-copy deterministically.
"""

import os
import sys
import time

from fairseq_cli import train

import hyperfairseq.fairseq_patches as patches

PART = 1 << 16


def stalled_copy(marker: str):
    copy = patches._copy_file

    def stall(src: str, tmp: str) -> None:
        if not os.path.exists(tmp.removesuffix(".tmp")):  # the file this copy replaces
            return copy(src, tmp)
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(fin.read(PART))
            fout.flush()
            open(marker, "w").close()
            time.sleep(3600)
    return stall


if __name__ == "__main__":
    patches._copy_file = stalled_copy(sys.argv[1])
    sys.argv = ["fairseq-train", *sys.argv[2:]]
    train.cli_main()
