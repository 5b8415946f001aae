"""One trial: train M replicas, feed the in-run Koopman estimator, return spectra and metrics.

:func:`run_trial` is the only entry point the sweeps layer needs. Windows of training steps
``[window_start, window_end)`` (0-based optimizer steps) each get a spectrum; snapshot ``j``
holds the recorded weights after optimizer step ``(j + 1) * record_every``, so window
``[a, b)`` uses snapshots ``a / record_every .. b / record_every - 1``. Snapshots are
``(n_replicas, n_features)``; the estimator sees each replica as its own trajectory
``(n_steps, n_features)`` and never pairs snapshots across replicas.

Determinism: the seed is split (``numpy.random.SeedSequence``) into independent streams for
the data split, the initialisation, the replica noise, the batch order and the sketch; batch
permutations are drawn on the CPU with their own ``torch.Generator``, so the batch order is
the same with or without a GPU (the published scripts' bug).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from study import records
from study.config import TrialConfig
from study.data import load_dataset
from study.koopman import fit_koopman
from study.observables import resolve_observables, snapshot
from study.resolution import variant_spectra
from study.replicas import (build_replicas, constrain_norms, evaluate, initial_parameters,
                            make_model, replica_norms)
from study.trial_state import BatchSampler, WindowRecorder

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
Report = Callable[[dict, "dict | None"], None]


@dataclass(frozen=True)
class WindowSpectrum:
    """The Koopman spectrum of training steps ``[window_start, window_end)``."""

    window_index: int
    window_start: int
    window_end: int
    eigenvalues: np.ndarray  # (k,) complex, sorted by decreasing modulus
    residual: float
    # Spectra of the same trajectories after changes that keep the dynamics (study.resolution)
    variants: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrialResult:
    """What one trial produced; ``windows`` keeps every spectrum finished before a divergence."""

    config: TrialConfig
    status: str  # records.STATUS_OK | STATUS_DIVERGED | STATUS_FAILED
    diverged_step: int | None
    message: str
    windows: tuple[WindowSpectrum, ...]
    final_train_loss: float
    final_test_loss: float
    final_train_accuracy: float
    final_test_accuracy: float
    n_steps_completed: int
    wall_time_s: float
    device: str

    def spectrum_rows(self, trial_id: str, condition: str) -> list[dict]:
        """One row per eigenvalue of every window, in the schema of :mod:`study.records`."""
        rows = []
        for window in self.windows:
            estimates = {records.ESTIMATE_RECORDED: window.eigenvalues, **window.variants}
            for estimate, eigenvalues in estimates.items():
                rows += records.spectrum_rows(
                    trial_id=trial_id, condition=condition, seed=self.config.seed,
                    window_index=window.window_index, window_start=window.window_start,
                    window_end=window.window_end, eigenvalues=eigenvalues,
                    residual=window.residual, estimate=estimate)
        return rows

    def trial_row(self, trial_id: str, condition: str) -> dict:
        """The ``trials.parquet`` row: identity, status, every flat config value, outcomes."""
        row = {"trial_id": trial_id, "condition": condition, "seed": self.config.seed,
               "status": self.status, "diverged_step": self.diverged_step, "message": self.message}
        row.update(self.config.to_flat_dict())
        row.update(final_train_loss=self.final_train_loss, final_test_loss=self.final_test_loss,
                   final_train_accuracy=self.final_train_accuracy,
                   final_test_accuracy=self.final_test_accuracy,
                   n_steps_completed=self.n_steps_completed, wall_time_s=self.wall_time_s,
                   device_used=self.device, n_windows=len(self.windows),
                   package_version=records.PACKAGE_VERSION)
        return row


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA when available, else CPU (decided once per trial)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("config key 'device' is 'cuda' but no CUDA device is available")
    return torch.device(name)


def derived_seeds(seed: int) -> dict[str, int]:
    """Independent integer seeds for each random choice of a trial, all from ``seed``."""
    streams = ("data", "init", "replica_noise", "batches", "sketch")
    children = np.random.SeedSequence(seed).spawn(len(streams))
    return {name: int(child.generate_state(1)[0]) for name, child in zip(streams, children)}


def run_trial(config: TrialConfig | dict, report: Report | None = None, *,
              resume_state: dict | None = None) -> TrialResult:
    """Run one trial (see the module docstring); divergence returns status ``"diverged"``.

    ``report(metrics, state)`` is called when each window closes (``state`` given) and every
    ``checkpoint_every`` steps (``state`` given); ``run_trial(config, report,
    resume_state=state)`` continues exactly where ``state`` was taken. Other exceptions
    propagate (the sweeps layer records them as ``"failed"``), among them
    :class:`study.data.MissingDataError` naming the folder and the files it expected.

    ``metrics`` (flat, JSON-friendly): ``event`` ("window" or "checkpoint"), ``step`` (optimizer
    steps done), ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy`` (replica
    means; train metrics on at most ``eval_max_samples`` training samples); window events add
    ``window_index``, ``window_start``, ``window_end``, ``eigenvalues_real``,
    ``eigenvalues_imag`` (lists) and ``residual``. A validation trial reports its one window
    with no losses and no state (it is seconds of work, nothing to resume).
    """
    config = TrialConfig.from_flat_dict(config) if isinstance(config, dict) else config
    if config.trial_type == "validation":
        return _run_validation(config, report)
    if config.training.n_threads is None:
        return _NetworkTrial(config, report, resume_state).run()
    return _run_with_threads(config.training.n_threads,
                             lambda: _NetworkTrial(config, report, resume_state).run())


def _run_with_threads(n_threads: int, function):
    """Run ``function`` with torch and BLAS limited to ``n_threads``, restoring both after.

    Oversubscribed BLAS threads made the window's DMD 2-10x slower on a busy 2-core machine.
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            return function()
    finally:
        torch.set_num_threads(previous)


def _run_validation(config: TrialConfig, report: Report | None) -> TrialResult:
    """The paper's OMD / OGD / bisection problem: 25 trajectories in one DMD problem."""
    from study.validation import validation_trajectories

    started = time.perf_counter()
    settings, koopman = config.validation, config.koopman
    trajectories = validation_trajectories(
        settings.validation_method, n_steps=config.training.n_steps,
        step_size=settings.validation_step_size, grid_jitter=settings.grid_jitter,
        random_state=config.seed)  # (25, n_steps, 2)
    fit = fit_koopman(trajectories, delays=koopman.delays, rank=koopman.rank)
    window = WindowSpectrum(0, 0, config.training.n_steps, np.asarray(fit.eigenvalues),
                            float(fit.residual), _variants(koopman, trajectories, fit))
    if report is not None:
        report(_window_metrics(window, config.training.n_steps, {}), None)
    nan = float("nan")
    return TrialResult(config, records.STATUS_OK, None, "", (window,), nan, nan, nan, nan,
                       config.training.n_steps, time.perf_counter() - started, "cpu")


def _variants(koopman, trajectories: np.ndarray, fit) -> dict:
    """The resolution variants of one window, when the config asks for them."""
    if not koopman.resolution_variants:
        return {}
    return variant_spectra(trajectories, delays=koopman.delays, rank=koopman.rank,
                           n_eigenvalues=len(fit.eigenvalues))


def _window_metrics(window: WindowSpectrum, step: int, losses: dict) -> dict:
    metrics = {"event": "window", "step": step, **losses, "window_index": window.window_index,
               "window_start": window.window_start, "window_end": window.window_end,
               "eigenvalues_real": [float(value.real) for value in window.eigenvalues],
               "eigenvalues_imag": [float(value.imag) for value in window.eigenvalues],
               "residual": window.residual}
    return metrics


class _Diverged(Exception):
    def __init__(self, step: int, what: str):
        super().__init__(f"{what} became non-finite at step {step}")
        self.step = step


class _NetworkTrial:
    """The training loop of one network trial, split into small steps for readability."""

    def __init__(self, config: TrialConfig, report: Report | None, resume_state: dict | None):
        self.config, self.report, self.started = config, report, time.perf_counter()
        self.device = resolve_device(config.device)
        seeds = derived_seeds(config.seed)
        self.data = load_dataset(config.data, np.random.default_rng(seeds["data"]))
        vocabulary = config.data.modulus + 1 if config.data.dataset == "modular_addition" else None
        model = make_model(config.model, self.data.input_shape, self.data.n_classes, vocabulary,
                           seeds["init"])
        stacks = initial_parameters(model, config.training.n_replicas, config.training.replica_noise,
                                    torch.Generator().manual_seed(seeds["replica_noise"]))
        self.target_norms = replica_norms(list(stacks.values())).to(self.device)
        self.replicas = build_replicas(config.training.replica_mode, model, stacks, config.optimizer,
                                       self.device)
        self.observables = resolve_observables(config.koopman.observables, list(stacks),
                                               getattr(model, "observable_aliases", {}))
        self.train_inputs = self.data.train_inputs.to(self.device)
        self.train_labels = self.data.train_labels.to(self.device)
        batch_size = len(self.train_labels) if config.optimizer.full_batch else config.optimizer.batch_size
        self.sampler = BatchSampler(len(self.train_labels), batch_size, seeds["batches"])
        self.recorder = WindowRecorder(config.koopman, config.training.n_replicas, seeds["sketch"])
        self.step, self.windows, self.elapsed_before = 0, [], 0.0
        if resume_state is not None:
            self._load_state(resume_state)

    def run(self) -> TrialResult:
        koopman, n_steps = self.config.koopman, self.config.training.n_steps
        window_span = koopman.window_size or n_steps
        try:
            while self.step < n_steps:
                self._train_one_step()
                if self.step % koopman.record_every == 0:
                    self._record()
                if self.step % window_span == 0:
                    self._close_window(window_span)
                elif self._is_checkpoint():
                    self._report({"event": "checkpoint", "step": self.step, **self._losses()})
        except _Diverged as diverged:
            logger.info("trial seed %d diverged: %s", self.config.seed, diverged)
            return self._result(records.STATUS_DIVERGED, diverged.step, str(diverged))
        return self._result(records.STATUS_OK, None, "")

    def _train_one_step(self) -> None:
        batch = self.sampler.next_batch()
        if batch is None:  # full batch: no indexing copy
            inputs, labels = self.train_inputs, self.train_labels
        else:
            batch = batch.to(self.device)
            inputs, labels = self.train_inputs[batch], self.train_labels[batch]
        losses = self.replicas.train_step(inputs, labels)  # (M,)
        if self.config.optimizer.constant_weight_norm:
            constrain_norms(self.replicas, self.target_norms)
        if not bool(torch.isfinite(losses).all()):
            raise _Diverged(self.step, f"training loss (learning_rate {self.config.optimizer.learning_rate})")
        self.step += 1

    def _record(self) -> None:
        values = snapshot(self.replicas.stacked_parameters(), self.observables)  # (M, F)
        if not bool(torch.isfinite(values).all()):
            raise _Diverged(self.step - 1, "recorded weights")
        self.recorder.add(values)

    def _close_window(self, window_span: int) -> None:
        record_every = self.config.koopman.record_every
        start = self.step - window_span
        fit, trajectories = self.recorder.fit(start // record_every, self.step // record_every)
        window = WindowSpectrum(len(self.windows), start, self.step, np.asarray(fit.eigenvalues),
                                float(fit.residual), _variants(self.config.koopman, trajectories, fit))
        self.windows.append(window)
        self._report(_window_metrics(window, self.step, self._losses()))

    def _is_checkpoint(self) -> bool:
        every = self.config.training.checkpoint_every
        return every is not None and self.step % every == 0

    def _losses(self) -> dict:
        """Replica-mean loss and accuracy on the (capped) train split and the test split."""
        cap = self.config.training.eval_max_samples
        train = evaluate(self.replicas, self.train_inputs[:cap], self.train_labels[:cap])
        test = evaluate(self.replicas, self.data.test_inputs[:cap].to(self.device),
                        self.data.test_labels[:cap].to(self.device))
        return {"train_loss": float(train[0].mean()), "train_accuracy": float(train[1].mean()),
                "test_loss": float(test[0].mean()), "test_accuracy": float(test[1].mean())}

    def _report(self, metrics: dict) -> None:
        if self.report is not None:
            self.report(metrics, self._state())

    def _state(self) -> dict:
        return {"format": STATE_FORMAT, "config": self.config.to_flat_dict(), "step": self.step,
                "replicas": self.replicas.state_dict(), "sampler": self.sampler.state_dict(),
                "recorder": self.recorder.state_dict(),
                "windows": [asdict(window) for window in self.windows],
                "elapsed_s": self.elapsed_before + time.perf_counter() - self.started}

    def _load_state(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT or state.get("config") != self.config.to_flat_dict():
            raise ValueError("resume_state was taken from a different config or state format; "
                             "refusing to resume")
        self.step = int(state["step"])
        self.replicas.load_state_dict(state["replicas"])
        self.sampler.load_state_dict(state["sampler"])
        self.recorder.load_state_dict(state["recorder"])
        self.windows = [WindowSpectrum(**window) for window in state["windows"]]
        self.elapsed_before = float(state["elapsed_s"])

    def _result(self, status: str, diverged_step: int | None, message: str) -> TrialResult:
        final = self._losses() if status == records.STATUS_OK else self._finite_losses()
        return TrialResult(
            self.config, status, diverged_step, message, tuple(self.windows),
            final["train_loss"], final["test_loss"], final["train_accuracy"], final["test_accuracy"],
            self.step, self.elapsed_before + time.perf_counter() - self.started, str(self.device))

    def _finite_losses(self) -> dict:
        nan = math.nan
        return {"train_loss": nan, "test_loss": nan, "train_accuracy": nan, "test_accuracy": nan}
