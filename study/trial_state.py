"""The resumable pieces of a training trial: the batch order and the Koopman window recorder.

Both have ``state_dict`` / ``load_state_dict`` with plain, picklable contents, so that a trial
resumed from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from study.config import KoopmanConfig
from study.koopman import KoopmanFit, fit_koopman
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


class WindowRecorder:
    """Feeds snapshots ``(n_replicas, n_features)`` to the estimator and fits closed windows.

    Without PCA: a :class:`study.streaming.StreamingKoopman` (in-run, optionally sketched).
    With ``pca_components``: PCA needs the whole window, so the window's raw snapshots are
    buffered on the CPU (float32) and the batch DMD runs on the projected trajectories when
    the window closes; the buffer is then emptied.
    """

    def __init__(self, config: KoopmanConfig, n_replicas: int, seed: int):
        self.config = config
        self.buffer: list[np.ndarray] = []
        self.buffer_start = 0  # snapshot index of buffer[0]
        self.stream = None
        if config.pca_components is None:
            from study.streaming import StreamingKoopman

            self.stream = StreamingKoopman(n_replicas=n_replicas, delays=config.delays, rank=config.rank,
                                           sketch_dimension=config.sketch_dimension, random_state=seed)

    def add(self, values: torch.Tensor) -> None:
        if self.stream is not None:
            self.stream.partial_fit(values)
        else:
            self.buffer.append(values.detach().to("cpu", torch.float32).numpy().copy())

    def fit(self, start: int, stop: int) -> tuple[KoopmanFit, np.ndarray]:
        """The fit of snapshots ``[start, stop)`` and the trajectories ``(M, T, k)`` it was fitted on."""
        if self.stream is not None:
            window = self.stream.window(start, stop)
            return fit_koopman(window, delays=self.config.delays, rank=self.config.rank,
                               solver=self.stream.solver), window
        offset = start - self.buffer_start
        window = np.stack(self.buffer[offset : stop - self.buffer_start], axis=1)  # (M, T, F)
        projected = pca_project(window, self.config.pca_components)  # (M, T, k)
        self.buffer, self.buffer_start = self.buffer[stop - self.buffer_start :], stop
        return fit_koopman(projected, delays=self.config.delays, rank=self.config.rank), projected

    def state_dict(self) -> dict:
        return {"buffer_start": self.buffer_start,
                "buffer": [array.copy() for array in self.buffer],
                "stream": None if self.stream is None else copy.deepcopy(self.stream.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.buffer_start = int(state["buffer_start"])
        self.buffer = [array.copy() for array in state["buffer"]]
        if state["stream"] is not None:
            from study.streaming import StreamingKoopman

            self.stream = StreamingKoopman.from_state_dict(state["stream"])
