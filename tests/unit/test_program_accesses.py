"""The cross-program access check (`program_accesses.py`) on small kernels with known answers: it must
find a read of another program's output and two programs writing one element (a one-lane mask shift), and
must pass row-local launches with masked-off lanes and inputs every program reads."""

import pytest
import torch
import triton
import triton.language as tl
from program_accesses import assert_row_local, record_accesses

BLOCK = 4


@triton.jit
def _copy_kernel(x_ptr, y_ptr, n, READ_AHEAD: tl.constexpr, WRITE_PAST: tl.constexpr, IN_PLACE: tl.constexpr,
                 BLOCK: tl.constexpr):
    """Program p: y[p*BLOCK + i] = x[p*BLOCK + i + READ_AHEAD] + x[0], for i < BLOCK + WRITE_PAST."""
    p = tl.program_id(0)
    offs = p * BLOCK + tl.arange(0, 2 * BLOCK)
    keep = (tl.arange(0, 2 * BLOCK) < BLOCK + WRITE_PAST) & (offs < n)
    v = tl.load(x_ptr + offs + READ_AHEAD, mask=keep & (offs + READ_AHEAD < n), other=0.0) + tl.load(x_ptr)
    out = x_ptr if IN_PLACE else y_ptr
    tl.store(out + offs, v, mask=keep)


def _launch(read_ahead=0, write_past=0, in_place=False, n=13, bound=None):
    """The kernel on n elements, told they are `bound` (n unless given)."""
    x, y = torch.arange(n, dtype=torch.float32) + 1, torch.zeros(n, dtype=torch.float32)
    bound = bound or n
    with record_accesses() as launches:
        _copy_kernel[(triton.cdiv(bound, BLOCK),)](x, y, bound, read_ahead, write_past, in_place, BLOCK)
    return launches


def test_row_local_launches_pass_and_masked_off_lanes_are_not_accesses():
    # each program computes 2 * BLOCK lanes and masks off the upper half, which is its neighbour's block:
    # counted as accesses, those lanes would be stores into another program's elements
    launches = _launch()
    assert [ln.kernel for ln in launches] == ["_copy_kernel"]
    assert_row_local(launches, expect_kernels=["_copy_kernel"])  # x[0] is read by all four: allowed


def test_a_read_of_what_another_program_writes_is_found():
    # in place, program p reads x[p*4 + 1 .. p*4 + 4]: the last of those is program p+1's first output
    # (program 0 also stores x[0], which every program reads)
    with pytest.raises(AssertionError, match=r"_copy_kernel: program 1 stores 4 bytes of x_ptr that program 0"):
        assert_row_local(_launch(read_ahead=1, in_place=True))


def test_two_programs_writing_one_element_are_found():
    # a one-lane mask shift: every program writes one element past its block, its neighbour's first
    with pytest.raises(AssertionError, match=r"program 0 stores 4 bytes of y_ptr that program 1 touches"):
        assert_row_local(_launch(write_past=1))


def test_each_overlapping_pair_is_reported_once_with_its_bytes_and_argument():
    # programs 0-3 (n = 13), each writing one element of its right neighbour's block: one float per pair,
    # each pair reported from both sides (both store it)
    conflicts = [c for ln in _launch(write_past=1) for c in ln.conflicts()]
    assert sorted((c.writer, c.other) for c in conflicts) == [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    assert all(c.nbytes == 4 and c.argument == "y_ptr" for c in conflicts)


def test_a_launch_with_one_program_is_not_taken_as_checked():
    x = torch.zeros(4)
    with record_accesses() as launches:
        _copy_kernel[(1,)](x, x.clone(), 4, 0, 0, False, BLOCK)
    with pytest.raises(AssertionError, match="1 program"):
        assert_row_local(launches, expect_kernels=["_copy_kernel"])


def test_an_access_past_the_storage_is_refused_before_it_happens():
    # told 16 elements where x and y hold 15: program 3 would read one float past x (and write one past y)
    with pytest.raises(Exception, match="_copy_kernel: program 3 would load 1 element"):
        _launch(n=15, bound=16)


def test_recorders_nest_and_both_see_the_inner_launch():
    with record_accesses() as outer:
        with record_accesses() as inner:
            _copy_kernel[(2,)](torch.zeros(8), torch.zeros(8), 8, 0, 0, False, BLOCK)
        _copy_kernel[(1,)](torch.zeros(4), torch.zeros(4), 4, 0, 0, False, BLOCK)
    assert len(inner) == 1 and len(outer) == 2
    assert_row_local(outer, expect_kernels=["_copy_kernel"])


def test_bounds_alone_keep_no_accesses_and_still_refuse():
    with record_accesses(keep=False) as launches:
        _copy_kernel[(2,)](torch.zeros(8), torch.zeros(8), 8, 0, 0, False, BLOCK)
    assert launches and not any(launches[0].accesses.values())
    with pytest.raises(Exception, match="would load 1 element"), record_accesses(keep=False):
        _copy_kernel[(4,)](torch.zeros(15), torch.zeros(15), 16, 0, 0, False, BLOCK)
