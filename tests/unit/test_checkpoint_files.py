"""checkpoint_files.safe_load's messages for files that are not checkpoints: what the file begins with where
it is neither a zip archive nor a pickle (a text, JSON or image file read safely used to be reported as a
pickle that "asks to call a Python object"), and a crafted pickle refused by the name of what it calls."""

import io

import pytest
import torch

from hyperfairseq.checkpoint_files import CheckpointError, safe_load

NOT_CHECKPOINTS = [b"# README\n", b'{"model": "lstm"}\n', b"\x89PNG\r\n\x1a\n\x00\x00", b"hello world\n"]


@pytest.mark.parametrize("data", NOT_CHECKPOINTS)
@pytest.mark.parametrize("as_file", [False, True], ids=["path", "file_object"])
def test_a_file_that_is_neither_zip_nor_pickle_is_named_by_what_it_begins_with(tmp_path, data, as_file):
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    source = io.BytesIO(data) if as_file else str(path)
    with pytest.raises(CheckpointError) as err:
        safe_load(source, "model.pt")
    message = str(err.value)
    assert message.startswith("model.pt: not a readable checkpoint: neither a zip archive nor a pickle"), message
    assert repr(data[:8]) in message and "refused" not in message, message


def test_a_protocol_0_pickle_that_calls_a_function_is_refused_by_its_name(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    with pytest.raises(CheckpointError, match=r"model\.pt: refused: it asks to call os\.system"):
        safe_load(str(path), "model.pt")
    assert not marker.exists()


def test_a_damaged_legacy_pickle_is_named_damaged(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x02}q\x00.")  # a protocol-2 pickle of {} where torch's legacy format has its magic
    with pytest.raises(CheckpointError, match=r"model\.pt: not a readable checkpoint \(truncated or damaged\?"):
        safe_load(str(path), "model.pt")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_read_from_a_file_object_loads_whole(zip_format):
    """safe_load reads a file object's first bytes for its messages and puts its position back."""
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.arange(3.0)}}, buffer, _use_new_zipfile_serialization=zip_format)
    buffer.seek(0)
    assert torch.equal(safe_load(buffer, "model.pt")["model"]["w"], torch.arange(3.0))
