"""The bytes each program of an interpreted Triton launch loads and stores, and the check that no byte one
program stores is touched by another program of the same launch.

Under TRITON_INTERPRET=1 the programs of a launch run one after another, so a program that reads what
another program of the launch writes, or two programs that write one byte, give an answer on CPU that
the GPU, running them at once, need not give: a race the interpreter cannot show (gpu-design §4, its
first gap; `compute-sanitizer --tool racecheck` sees shared memory only). The cell kernels are
row-local by design (`triton_kernels.py`): every program may read the shared weights, but it writes only
its own batch rows and its own partial-sum slot, and reads nothing another program writes.

`record_accesses()` patches the interpreter's masked load and store (every `tl.load` / `tl.store` goes
through them; masked-off lanes are not accesses) and its launch, and yields the list of `Launch`es it
saw. It also refuses, before it happens, an access outside the storage of every tensor argument of the
launch (`OutOfBounds`): the interpreter would carry it out on this process's memory, silently or with a
segmentation fault. Atomics and block pointers are refused rather than left unrecorded: the kernels use
neither.
"""

from contextlib import contextmanager
from typing import Dict, List, NamedTuple

import numpy as np
import pytest
from triton.runtime import interpreter


class Conflict(NamedTuple):
    """Bytes of one launch that program `writer` stores and another program (`other`) loads or stores."""

    kernel: str
    argument: str  # the tensor argument the first such byte lies in
    writer: int
    other: int
    nbytes: int


class OutOfBounds(AssertionError):
    """A load or store outside every tensor argument of its launch (refused, not carried out)."""


class Launch:
    """One kernel launch: per kind ("load" / "store"), the (program, byte addresses) of every access."""

    def __init__(self, kernel: str, arguments: Dict[str, range]):
        self.kernel, self.arguments = kernel, arguments
        self.accesses: Dict[str, List[np.ndarray]] = {"load": [], "store": []}

    def add(self, kind: str, program: int, addresses: np.ndarray, itemsize: int) -> None:
        """Every byte of the elements at `addresses` (uint64), tagged with the program."""
        nbytes = (addresses[:, None] + np.arange(itemsize, dtype=np.uint64)).ravel()
        self.accesses[kind].append(np.stack([nbytes, np.full_like(nbytes, program)], 1))

    def _pairs(self, kind: str) -> np.ndarray:
        parts = self.accesses[kind]
        return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.uint64)

    def check_bounds(self, kind: str, program: int, addresses: np.ndarray, itemsize: int) -> None:
        inside = np.zeros(len(addresses), dtype=bool)
        for span in self.arguments.values():
            inside |= (addresses >= span.start) & (addresses + itemsize <= span.stop)
        if not inside.all():
            raise OutOfBounds(f"{self.kernel}: program {program} would {kind} {int((~inside).sum())} element(s) "
                              "outside the storage of every tensor argument")

    def argument_of(self, address: int) -> str:
        return next((name for name, span in self.arguments.items() if address in span), "outside every argument")

    def conflicts(self) -> List[Conflict]:
        """Per (writer, other) pair of programs, the bytes the writer stores that the other touches."""
        stores = np.unique(self._pairs("store"), axis=0)
        touched = np.unique(np.concatenate([self._pairs("load"), stores]), axis=0)
        touched = touched[np.isin(touched[:, 0], stores[:, 0])]  # (byte, program) of written bytes
        found: Dict[tuple, List[int]] = {}
        # bytes touched by more than one program, then every (writer, other) pair among them
        byte, first, count = np.unique(touched[:, 0], return_index=True, return_counts=True)
        for b, start, k in zip(byte[count > 1], first[count > 1], count[count > 1]):
            programs = touched[start:start + k, 1]
            writers = stores[stores[:, 0] == b, 1]
            for w in writers:
                for o in programs[programs != w]:
                    found.setdefault((int(w), int(o)), []).append(int(b))
        return [Conflict(self.kernel, self.argument_of(min(bs)), w, o, len(bs)) for (w, o), bs in sorted(found.items())]


def _program_index(builder) -> int:
    (x, y, z), (_, ny, nz) = builder.grid_idx, builder.grid_dim
    return (x * ny + y) * nz + z


def _tensor_spans(names, args, kwargs) -> Dict[str, range]:
    """The byte range of each tensor argument of a launch (CPU tensors keep their addresses there)."""
    pairs = list(zip(names, args)) + list(kwargs.items())
    return {name: range(a.data_ptr(), a.data_ptr() + max(a.untyped_storage().nbytes(), 1))
            for name, a in pairs if hasattr(a, "data_ptr") and hasattr(a, "untyped_storage")}


def _refuse(what):
    def refused(*args, **kwargs):
        raise NotImplementedError(f"record_accesses does not record {what}; extend it before a kernel uses them")
    return refused


@contextmanager
def record_accesses(keep: bool = True):
    """Record the accesses of every interpreted launch inside the block; yields the list of launches.
    With `keep` False only the bounds are checked (the accesses are not kept: no `assert_row_local`)."""
    builder, executor = interpreter.interpreter_builder, interpreter.GridExecutor
    launches: List[Launch] = []
    load, store, call = builder.create_masked_load, builder.create_masked_store, executor.__call__

    def note(kind, ptrs, mask):
        on = np.broadcast_to(np.asarray(mask.data, dtype=bool), ptrs.data.shape)
        itemsize = np.dtype(interpreter._get_np_dtype(ptrs.get_element_ty())).itemsize
        addresses, program = ptrs.data[on].astype(np.uint64), _program_index(builder)
        launches[-1].check_bounds(kind, program, addresses, itemsize)
        if keep:
            launches[-1].add(kind, program, addresses, itemsize)

    def masked_load(ptrs, mask, other, *rest):
        note("load", ptrs, mask)
        return load(ptrs, mask, other, *rest)

    def masked_store(ptrs, value, mask, *rest):
        note("store", ptrs, mask)
        return store(ptrs, value, mask, *rest)

    def launch(self, *args, **kwargs):
        launches.append(Launch(self.fn.__name__, _tensor_spans(self.arg_names, args, kwargs)))
        return call(self, *args, **kwargs)

    patched = dict(create_masked_load=masked_load, create_masked_store=masked_store,
                   create_atomic_rmw=_refuse("atomics"), create_atomic_cas=_refuse("atomics"),
                   create_tensor_pointer_load=_refuse("block pointers"),
                   create_tensor_pointer_store=_refuse("block pointers"))
    before = {name: builder.__dict__.get(name) for name in patched}  # an enclosing recorder's, or None
    for name, fn in patched.items():
        setattr(builder, name, fn)  # instance attributes shadow the builder's methods
    executor.__call__ = launch
    try:
        yield launches
    finally:
        executor.__call__ = call
        for name, fn in before.items():
            setattr(builder, name, fn) if fn is not None else delattr(builder, name)


def assert_row_local(launches: List[Launch], expect_kernels=()) -> None:
    """No launch has a byte that one program stores and another touches; each of `expect_kernels` ran with
    more than one program (else there was nothing to compare)."""
    for kernel in expect_kernels:
        programs = {int(p) for ln in launches if ln.kernel == kernel for part in ln.accesses.values()
                    for pairs in part for p in np.unique(pairs[:, 1])}
        assert len(programs) > 1, f"{kernel}: {len(programs)} program(s) recorded, nothing to compare"
    conflicts = [c for ln in launches for c in ln.conflicts()]
    assert not conflicts, "programs of one launch share bytes one of them writes: " + "; ".join(
        f"{c.kernel}: program {c.writer} stores {c.nbytes} bytes of {c.argument} that program {c.other} touches"
        for c in conflicts[:5])


@pytest.fixture
def bounds_checked():
    """Every interpreted Triton launch of a test refuses an access outside its tensor arguments rather than
    carrying it out on this process's memory (`pytestmark = pytest.mark.usefixtures("bounds_checked")`
    in a module that imports it)."""
    with record_accesses(keep=False):
        yield
