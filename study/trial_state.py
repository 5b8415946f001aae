"""The resumable pieces of a training trial: the batch order and the Koopman window recorders.

All have ``state_dict`` / ``load_state_dict`` with plain, picklable contents, so that a trial
resumed from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import copy
from typing import Protocol

import numpy as np
import torch

from study.config import KoopmanConfig
from study.koopman import KoopmanFit, StreamingKoopman, fit_koopman
from study.observables import pca_project


class BatchSampler:
    """Mini-batch indices: a fresh seeded permutation each epoch, drawn on the CPU.

    A last partial batch of an epoch is dropped so every step sees ``batch_size`` samples.
    ``batch_size >= n_samples`` means full batch: :meth:`next_batch` returns ``None``.
    """

    def __init__(self, n_samples: int, batch_size: int, seed: int):
        self.n_samples, self.batch_size = n_samples, min(batch_size, n_samples)
        self.generator = torch.Generator().manual_seed(seed)  # CPU: same order on any device
        self.permutation = torch.empty(0, dtype=torch.int64)
        self.position = 0

    def next_batch(self) -> torch.Tensor | None:
        if self.batch_size == self.n_samples:
            return None
        if self.position + self.batch_size > len(self.permutation):
            self.permutation = torch.randperm(self.n_samples, generator=self.generator)
            self.position = 0
        batch = self.permutation[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state().clone(),
                "permutation": self.permutation.clone(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.permutation, self.position = state["permutation"].clone(), int(state["position"])


class WindowRecorder(Protocol):
    """What a trial needs from a recorder: snapshots in, the spectrum of a closed window out.

    Snapshots are ``(n_replicas, n_features)``; window bounds are snapshot indices. ``fit``
    also returns the trajectories it fitted, so that variant estimates can refit them.
    :func:`make_window_recorder` picks the implementation once per trial.
    """

    def add(self, values: torch.Tensor) -> None: ...

    def fit(self, start: int, stop: int) -> tuple[KoopmanFit, np.ndarray]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def make_window_recorder(config: KoopmanConfig, n_replicas: int, seed: int) -> WindowRecorder:
    """A :class:`PcaRecorder` when ``pca_components`` is set, else a :class:`StreamingRecorder`."""
    if config.pca_components is None:
        return StreamingRecorder(config, n_replicas, seed)
    return PcaRecorder(config)


class StreamingRecorder:
    """In-run: each snapshot goes straight to a :class:`study.koopman.StreamingKoopman`
    (raw, or CountSketched when ``sketch_dimension`` is set, seeded by ``seed``)."""

    def __init__(self, config: KoopmanConfig, n_replicas: int, seed: int):
        self.stream = StreamingKoopman(n_replicas=n_replicas, delays=config.delays,
                                       rank=config.rank, random_state=seed,
                                       sketch_dimension=config.sketch_dimension)

    def add(self, values: torch.Tensor) -> None:
        self.stream.partial_fit(values)

    def fit(self, start: int, stop: int) -> tuple[KoopmanFit, np.ndarray]:
        """The fit of snapshots ``[start, stop)`` and the trajectories ``(M, T, n_dims)`` it was
        fitted on."""
        window = self.stream.window(start, stop)
        stream = self.stream
        return fit_koopman(window, delays=stream.delays, rank=stream.rank,
                           solver=stream.solver), window

    def state_dict(self) -> dict:
        return {"stream": copy.deepcopy(self.stream.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.stream = StreamingKoopman.from_state_dict(state["stream"])


class PcaRecorder:
    """Batch: PCA needs the whole window, so the window's raw snapshots are buffered on the
    CPU (float32) and the batch DMD runs on the projected trajectories when the window
    closes; the buffer is then emptied."""

    def __init__(self, config: KoopmanConfig):
        self.config = config
        self.buffer: list[np.ndarray] = []
        self.buffer_start = 0  # snapshot index of buffer[0]

    def add(self, values: torch.Tensor) -> None:
        self.buffer.append(values.detach().to("cpu", torch.float32).numpy().copy())

    def fit(self, start: int, stop: int) -> tuple[KoopmanFit, np.ndarray]:
        """The fit of snapshots ``[start, stop)`` and the projected trajectories ``(M, T, k)``
        it was fitted on."""
        offset = start - self.buffer_start
        window = np.stack(self.buffer[offset : stop - self.buffer_start], axis=1)  # (M, T, F)
        projected = pca_project(window, self.config.pca_components, center=self.config.pca_center)
        self.buffer, self.buffer_start = self.buffer[stop - self.buffer_start :], stop
        return fit_koopman(projected, delays=self.config.delays, rank=self.config.rank), projected

    def state_dict(self) -> dict:
        return {"buffer_start": self.buffer_start,
                "buffer": [array.copy() for array in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        self.buffer_start = int(state["buffer_start"])
        self.buffer = [array.copy() for array in state["buffer"]]
