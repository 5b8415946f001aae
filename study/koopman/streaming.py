"""In-run Koopman estimation: a training loop feeds one snapshot per step (``partial_fit``).

:class:`StreamingKoopman` stores each step's snapshot of every replica — raw, or reduced by a
seeded :class:`study.koopman.sketch.CountSketch` when ``sketch_dimension`` is set — in a
growing float64 buffer ``(n_steps, n_replicas, n_dims)`` kept as a list of fixed-size blocks of
``BLOCK_STEPS`` steps. Blocks instead of capacity doubling: doubling copies the history at
every growth and touches about three times the final memory, and first-touch page faults are
the dominant per-step cost of feeding (about 1 us per 4 KiB page on the project's VMs);
blocks touch each page once and never copy on the hot path. Memory is O(steps x replicas x n_dims): with a sketch it does not depend on the number
of parameters P. Any window ``[start, stop)`` of the steps seen so far can be fitted with
:func:`study.koopman.dmd.fit_koopman`; the window is the stacked array
``(n_replicas, stop - start, n_dims)`` so streaming equals batch exactly.

Feeding is the hot path (once per optimizer step), so it copies the snapshot straight into
the buffer row (torch tensors through a torch view of the numpy buffer: one device-to-host
copy, no intermediate array) and checks finiteness on the stored row with one dot product
with a zero vector (NaN exactly when an entry is NaN or Inf; a sum could overflow).

Storage precision: float64, except that snapshots fed as float32/float16 (raw, unsketched)
are stored as float32 — exactly the values fed, in half the memory. On the project's VMs the
first write to fresh memory costs ~1.2 us per 4 KiB page, which is most of the feeding cost,
so this halves it. A later snapshot of a wider type upgrades the whole buffer to float64 (so
storage never rounds), and every window is returned and fitted in float64.

Orientation: a snapshot is ``(n_replicas, n_features)``; windows are
``(n_replicas, n_steps, n_dims)`` (time on axis 1 of the stack, axis 0 of each replica).
"""

from __future__ import annotations

import math

import numpy as np

from study.koopman.dmd import SOLVERS, fit_koopman
from study.koopman.errors import KoopmanInputError, NonFiniteSnapshotError
from study.koopman.result import KoopmanFit
from study.koopman.sketch import CountSketch

STATE_FORMAT_VERSION = 1
BLOCK_STEPS = 128  # steps per buffer block: growth allocates rarely, wastes < 128 steps
_PRETOUCH_BYTES = 64 * 2**20  # larger blocks (huge raw snapshots) stay lazily mapped


class StreamingKoopman:
    """Bounded-memory, in-run projected DMD over windows of training steps.

    Parameters: ``n_replicas`` (rows per snapshot), ``delays`` (Hankel depth d), ``rank``
    (SVD triplets kept; None: numerical rank), ``sketch_dimension`` (None: record raw
    features; an int s: CountSketch to s dims), ``random_state`` (seeds the sketch),
    ``solver`` ("auto" | "svd" | "gram", passed to :func:`study.koopman.dmd.fit_koopman`).
    Fitted state: ``n_steps_seen_``, ``n_features_`` (P, known after the first snapshot).
    """

    def __init__(self, *, n_replicas: int = 1, delays: int = 0, rank: int | None = None,
                 sketch_dimension: int | None = None, random_state: int = 0,
                 solver: str = "auto"):
        self.n_replicas = n_replicas
        self.delays = delays
        self.rank = rank
        self.sketch_dimension = sketch_dimension
        self.random_state = random_state
        self.solver = solver
        self.n_steps_seen_ = 0
        self.n_features_: int | None = None
        self._blocks: list[np.ndarray] = []  # each (BLOCK_STEPS, n_replicas, n_dims)
        self._storage_dtype = np.float64
        self._fed_dtype = None  # dtype object of the last snapshot (identity check per feed)
        self._block_tensor = None  # torch view of the last block, made on torch feeds
        self._sketch: CountSketch | None = None
        self._check_parameters()

    def _check_parameters(self) -> None:
        for name, minimum, optional in (("n_replicas", 1, False), ("delays", 0, False),
                                        ("rank", 1, True), ("sketch_dimension", 1, True),
                                        ("random_state", None, False)):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
                    minimum is not None and value < minimum):
                bound = f" >= {minimum}" if minimum is not None else ""
                raise ValueError(f"{name} must be {'None or ' if optional else ''}an int"
                                 f"{bound}; got {value!r}")
            setattr(self, name, int(value))
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}; got {self.solver!r}")

    @property
    def n_dims_(self) -> int | None:
        """Stored dimension per replica: the sketch dimension, or P for raw snapshots."""
        if self.n_features_ is None:
            return None
        return self.sketch_dimension if self.sketch_dimension is not None else self.n_features_

    def _start(self, n_features: int, fed_dtype=None) -> None:
        self.n_features_ = int(n_features)
        narrow = self.sketch_dimension is None and _is_narrow_float(fed_dtype)
        self._storage_dtype = np.float32 if narrow else np.float64
        if self.sketch_dimension is not None:
            self._sketch = CountSketch(n_features, self.sketch_dimension,
                                       random_state=self.random_state)
        self._blocks = []
        self._block_tensor = None

    def _grow(self) -> None:
        block = np.empty((BLOCK_STEPS, self.n_replicas, self.n_dims_), dtype=self._storage_dtype)
        if block.nbytes <= _PRETOUCH_BYTES:
            block.fill(0.0)  # one sweep of page faults is ~15% cheaper than one per feed here
        self._blocks.append(block)
        self._block_tensor = None
        self._zeros = np.zeros(self.n_replicas * self.n_dims_, dtype=self._storage_dtype)

    def _accept_dtype(self, dtype) -> None:
        """Slow path, once per new snapshot dtype: widen float32 storage if needed."""
        if self._storage_dtype == np.float32 and not _is_narrow_float(dtype):
            self._storage_dtype = np.float64
            self._blocks = [block.astype(np.float64) for block in self._blocks]
            self._block_tensor = None
            self._zeros = np.zeros(self.n_replicas * self.n_dims_)
        self._fed_dtype = dtype

    def _shape_error(self, shape) -> ValueError:
        expected = (self.n_replicas, self.n_features_ if self.n_features_ else "n_features")
        return ValueError(f"snapshot must have shape {expected} (n_replicas, n_features)"
                          f"{' or (n_features,)' if self.n_replicas == 1 else ''}; got "
                          f"{tuple(shape)} at step {self.n_steps_seen_}")

    def partial_fit(self, snapshot) -> "StreamingKoopman":
        """Record one training step: ``snapshot`` is ``(n_replicas, n_features)`` (torch tensor
        on any device, or numpy); ``(n_features,)`` is accepted when ``n_replicas == 1``.

        Raises :class:`study.koopman.errors.NonFiniteSnapshotError` (with the step) on
        NaN/Inf; the bad step is not recorded, so earlier windows stay usable.
        """
        shape = snapshot.shape
        if len(shape) == 1 and self.n_replicas == 1:
            snapshot = snapshot.reshape(1, -1)
            shape = snapshot.shape
        if len(shape) != 2 or shape[0] != self.n_replicas:
            raise self._shape_error(shape)
        if self.n_features_ is None:
            self._start(shape[1], snapshot.dtype)
        elif shape[1] != self.n_features_:
            raise self._shape_error(shape)
        if self._sketch is not None:
            snapshot = self._sketch.transform(snapshot)
        if snapshot.dtype is not self._fed_dtype:
            self._accept_dtype(snapshot.dtype)
        step = self.n_steps_seen_
        offset = step % BLOCK_STEPS
        if step == len(self._blocks) * BLOCK_STEPS:
            self._grow()
        row = self._blocks[-1][offset]
        if type(snapshot).__module__.startswith("torch"):
            self._copy_tensor(snapshot, row, offset)
        else:
            np.copyto(row, snapshot)
        # x . 0 is NaN iff some entry is NaN/Inf, and unlike a sum it cannot overflow
        if math.isnan(np.dot(row.reshape(-1), self._zeros)):
            raise NonFiniteSnapshotError(
                f"non-finite snapshot at step {step} (replicas "
                f"{np.flatnonzero(~np.isfinite(row).all(axis=1)).tolist()})")
        self.n_steps_seen_ = step + 1
        return self

    def _copy_tensor(self, snapshot, row: np.ndarray, offset: int) -> None:
        """CPU tensors through their numpy view (cheapest); others, and bfloat16 (no numpy
        type), through a torch view of the block: one device-to-host copy, no temporary."""
        if snapshot.device.type == "cpu":
            try:
                np.copyto(row, snapshot.detach().numpy())
                return
            except TypeError:  # bfloat16
                pass
        if self._block_tensor is None:
            import torch  # lazy: only callers that feed tensors pay for torch

            self._block_tensor = torch.from_numpy(self._blocks[-1])
        self._block_tensor[offset].copy_(snapshot.detach())

    def window(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A copy of steps ``[start, stop)`` as ``(n_replicas, stop - start, n_dims)`` float64."""
        stop = self.n_steps_seen_ if stop is None else stop
        if not 0 <= start < stop <= self.n_steps_seen_:
            raise KoopmanInputError(
                f"window [{start}, {stop}) is not inside the {self.n_steps_seen_} steps seen")
        window = np.empty((self.n_replicas, stop - start, self.n_dims_))
        first_block, last_block = start // BLOCK_STEPS, (stop - 1) // BLOCK_STEPS
        for index in range(first_block, last_block + 1):
            block_start = index * BLOCK_STEPS
            low, high = max(start, block_start), min(stop, block_start + BLOCK_STEPS)
            # replica-major copy: each replica's trajectory is contiguous for the solvers
            window[:, low - start:high - start] = \
                self._blocks[index][low - block_start:high - block_start].transpose(1, 0, 2)
        return window

    def fit_window(self, start: int = 0, stop: int | None = None) -> KoopmanFit:
        """Projected DMD of steps ``[start, stop)`` (default: all seen) of every replica."""
        return fit_koopman(self.window(start, stop), delays=self.delays, rank=self.rank,
                           solver=self.solver)

    def eigenvalues(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Eigenvalues (k,) complex of the window ``[start, stop)``."""
        return self.fit_window(start, stop).eigenvalues

    def state_dict(self) -> dict:
        """Picklable state: numpy arrays, ints and strings only ("all"/"raw" stand for None)."""
        n_dims = self.n_dims_ if self.n_dims_ is not None else 0
        snapshots = (self.window().transpose(1, 0, 2).astype(self._storage_dtype)
                     if self.n_steps_seen_ else np.empty((0, self.n_replicas, n_dims)))
        return {
            "format_version": STATE_FORMAT_VERSION,
            "n_replicas": int(self.n_replicas),
            "delays": int(self.delays),
            "rank": "all" if self.rank is None else int(self.rank),
            "sketch_dimension": "raw" if self.sketch_dimension is None
            else int(self.sketch_dimension),
            "random_state": int(self.random_state),
            "solver": str(self.solver),
            "n_features": int(self.n_features_ or 0),
            "n_dims": int(n_dims),
            "n_steps_seen": int(self.n_steps_seen_),
            "storage_dtype": np.dtype(self._storage_dtype).name,
            "snapshots": snapshots,  # (n_steps_seen, n_replicas, n_dims), storage dtype
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "StreamingKoopman":
        """Rebuild an estimator from :meth:`state_dict`; feeding continues where it stopped."""
        if state.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported StreamingKoopman state format_version "
                             f"{state.get('format_version')!r}; expected {STATE_FORMAT_VERSION}")
        estimator = cls(
            n_replicas=int(state["n_replicas"]), delays=int(state["delays"]),
            rank=None if state["rank"] == "all" else int(state["rank"]),
            sketch_dimension=None if state["sketch_dimension"] == "raw"
            else int(state["sketch_dimension"]),
            random_state=int(state["random_state"]), solver=str(state["solver"]))
        snapshots = np.asarray(state["snapshots"])
        if int(state["n_features"]) > 0:
            estimator._start(int(state["n_features"]), state.get("storage_dtype", "float64"))
            n_steps = int(state["n_steps_seen"])
            if snapshots.shape != (n_steps, estimator.n_replicas, estimator.n_dims_):
                raise ValueError(f"state snapshots have shape {snapshots.shape}; expected "
                                 f"{(n_steps, estimator.n_replicas, estimator.n_dims_)}")
            for block_start in range(0, n_steps, BLOCK_STEPS):
                estimator._grow()
                chunk = snapshots[block_start:block_start + BLOCK_STEPS]
                estimator._blocks[-1][: len(chunk)] = chunk
            estimator.n_steps_seen_ = n_steps
        return estimator


def _is_narrow_float(dtype) -> bool:
    """True for float32/float16/bfloat16 (numpy or torch): exactly representable in float32."""
    return str(dtype).split(".")[-1] in ("float32", "float16", "bfloat16")
