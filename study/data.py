"""Data sets of a trial, as tensors on the CPU: (inputs, labels) for a train and a test split.

Every random choice (split, subsampling, synthetic data) comes from a ``numpy.random.Generator``
seeded from the trial seed, so the same seed gives the same data on any machine.

Inputs keep their natural layout: images ``(n_samples, channels, height, width)`` float32 (the
FCN flattens them), modular addition ``(n_samples, 3)`` int64 tokens ``[a, b, =]``. Labels
are int64 class indices. Images are read in [0, 1]; with ``normalize_inputs`` (the default)
each channel is then standardised, ``(x - mean) / std``: MNIST with the authors' constants
(0.1307, 0.3081: the statistics of its 60,000 training images, also used for the t10k-only
split), every other image set with the per-channel mean and std of its own training split
(our choice: the paper publishes no settings for them; it keeps handwritten and synthetic
inputs on the same scale).
"""

from __future__ import annotations

import functools
import gzip
import logging
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from study.config import DataConfig

logger = logging.getLogger(__name__)

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the authors' FCN script (transforms.Normalize)


class MissingDataError(FileNotFoundError):
    """A data folder, or the files expected in it, are absent (the message names both)."""


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors; ``n_classes`` outputs; ``input_shape`` of one sample."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]
    description: str


def load_dataset(config: DataConfig, random_state: np.random.Generator) -> Dataset:
    """The data set named by ``config.dataset``, split and subsampled with ``random_state``."""
    if config.dataset == "digits":
        dataset = _split(*load_digits_arrays(), config.test_fraction, random_state, "digits")
    elif config.dataset == "synthetic":
        inputs, labels = synthetic_classification(config.synthetic_like, random_state)
        dataset = _split(inputs, labels, config.test_fraction, random_state,
                         f"synthetic like {config.synthetic_like}")
    elif config.dataset == "mnist":
        dataset = load_mnist(Path(config.data_dir), config.test_fraction, random_state)
    elif config.dataset == "cifar10":
        dataset = load_cifar10(Path(config.data_dir))
    elif config.dataset == "modular_addition":
        dataset = modular_addition(config.modulus, config.train_fraction, random_state)
    else:  # validated by TrialConfig; kept for a clear error if the two drift apart
        raise ValueError(f"config key 'dataset' has unknown value {config.dataset!r}")
    if config.normalize_inputs and config.dataset != "modular_addition":
        statistics = (MNIST_MEAN, MNIST_STD) if config.dataset == "mnist" else None
        dataset = normalized(dataset, statistics)
    if config.max_train_samples is not None:
        dataset = _subsample(dataset, config.max_train_samples, random_state)
    return dataset


def normalized(dataset: Dataset, statistics: tuple[float, float] | None = None) -> Dataset:
    """Images standardised per channel, ``(x - mean) / std``, train and test alike.

    ``statistics``: a fixed ``(mean, std)`` for every channel; None: each channel's mean and
    std over the training split.
    """
    if statistics is None:
        mean = dataset.train_inputs.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
        std = dataset.train_inputs.std(dim=(0, 2, 3), keepdim=True)
    else:
        mean, std = statistics

    def apply(inputs):
        return ((inputs - mean) / std).to(torch.float32)

    return Dataset(apply(dataset.train_inputs), dataset.train_labels, apply(dataset.test_inputs),
                   dataset.test_labels, dataset.n_classes, dataset.input_shape,
                   f"{dataset.description}, standardised")


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: (1797, 1, 8, 8) in [0, 1] and labels (1797,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    return images, bunch.target.astype(np.int64)


def synthetic_classification(like: str, random_state: np.random.Generator):
    """A 10-class Gaussian-cluster set with the shape and value range of a handwritten set.

    Our choice (the paper publishes no settings): each class is a Gaussian blob around its own
    random centre in pixel space, squashed into [0, 1] by a logistic map, so that the inputs
    have the same shape, size and range as the handwritten data but no stroke structure.
    """
    n_samples, side = (1797, 8) if like == "digits" else (10000, 28)
    n_features, n_classes = side * side, 10
    centres = random_state.normal(0.0, 1.0, size=(n_classes, n_features))
    labels = random_state.integers(0, n_classes, size=n_samples)
    noise = random_state.normal(0.0, 1.0, size=(n_samples, n_features))
    values = 1.0 / (1.0 + np.exp(-(centres[labels] + noise)))
    return values.astype(np.float32).reshape(n_samples, 1, side, side), labels.astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzip-compressed or not), as a uint8 array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        content = stream.read()
    zero, data_type, n_dimensions = struct.unpack(">HBB", content[:4])
    if zero != 0 or data_type != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {content[:4]!r})")
    shape = struct.unpack(f">{n_dimensions}I", content[4 : 4 + 4 * n_dimensions])
    offset = 4 + 4 * n_dimensions
    array = np.frombuffer(content, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {array.size} values, its header declares {shape}")
    return array.reshape(shape)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_mnist_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    paths = [_find(folder, name) for name in MNIST_FILES[split]]
    if any(path is None for path in paths):
        return None
    stamps = tuple((str(path), path.stat().st_mtime_ns) for path in paths)
    return _decoded_mnist(stamps)


@functools.lru_cache(maxsize=4)
def _decoded_mnist(stamps: tuple[tuple[str, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images and labels, cached per process: a worker running many trials (a sweep)
    decompresses the files once. Keyed by path and modification time; never mutated."""
    images, labels = (read_idx(Path(path)) for path, _ in stamps)
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def load_mnist(folder: Path, test_fraction: float, random_state: np.random.Generator) -> Dataset:
    """MNIST from a folder of IDX files (``.gz`` or not).

    With all four files: the standard 60,000 / 10,000 split. With only the ``t10k`` pair (a
    partial download, 10,000 images): a seeded split of those images, holding out
    ``test_fraction`` of them.
    """
    expected = [name for pair in MNIST_FILES.values() for name in pair]
    if not folder.is_dir():
        raise MissingDataError(_missing_message("MNIST", folder, expected))
    train, test = _read_mnist_split(folder, "train"), _read_mnist_split(folder, "test")
    if test is None:
        raise MissingDataError(_missing_message("MNIST", folder, expected))
    if train is None:
        logger.info("MNIST: only the t10k files in %s; splitting them", folder)
        return _split(*test, test_fraction, random_state, f"MNIST t10k split ({folder})")
    return _dataset(*train, *test, f"MNIST ({folder})")


def load_cifar10(folder: Path) -> Dataset:
    """CIFAR-10 in its python pickle format: ``data_batch_1..5`` and ``test_batch``."""
    expected = CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,)
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if all((candidate / name).is_file() for name in expected):
            folder = candidate
            break
    else:
        raise MissingDataError(_missing_message("CIFAR-10", folder, list(expected)))
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    train_inputs = np.concatenate([inputs for inputs, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    test_inputs, test_labels = _read_cifar_batch(folder / CIFAR10_TEST_FILE)
    return _dataset(train_inputs, train_labels, test_inputs, test_labels, f"CIFAR-10 ({folder})")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as stream:
        batch = pickle.load(stream, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images.astype(np.float32) / 255.0, np.asarray(batch[b"labels"], dtype=np.int64)


def _missing_message(name: str, folder: Path, expected: list[str]) -> str:
    hint = " (IDX files may also end in .gz; the t10k pair alone is enough)" if name == "MNIST" else ""
    return (f"{name} data folder {str(folder)!r} is missing or incomplete; expected the files "
            f"{', '.join(expected)}{hint}")


def modular_addition(modulus: int, train_fraction: float, random_state: np.random.Generator):
    """All pairs (a, b) as tokens [a, b, =] (``=`` is token ``modulus``), label (a + b) mod p.

    A seeded permutation of the p*p pairs; the first ``train_fraction`` of it trains.
    """
    a, b = np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij")
    a, b = a.ravel(), b.ravel()
    tokens = np.stack([a, b, np.full_like(a, modulus)], axis=1).astype(np.int64)  # (p*p, 3)
    labels = ((a + b) % modulus).astype(np.int64)
    order = random_state.permutation(len(labels))
    n_train = int(train_fraction * len(labels))  # rounded down, as the authors' random_split
    train, test = order[:n_train], order[n_train:]
    return Dataset(torch.from_numpy(tokens[train]), torch.from_numpy(labels[train]),
                   torch.from_numpy(tokens[test]), torch.from_numpy(labels[test]),
                   n_classes=modulus, input_shape=(3,),
                   description=f"(a + b) mod {modulus}, train fraction {train_fraction}")


def _split(inputs, labels, test_fraction, random_state, description) -> Dataset:
    order = random_state.permutation(len(labels))
    n_test = max(1, int(round(test_fraction * len(labels))))
    test, train = order[:n_test], order[n_test:]
    return _dataset(inputs[train], labels[train], inputs[test], labels[test], description)


def _dataset(train_inputs, train_labels, test_inputs, test_labels, description) -> Dataset:
    return Dataset(torch.from_numpy(np.ascontiguousarray(train_inputs)),
                   torch.from_numpy(np.ascontiguousarray(train_labels)),
                   torch.from_numpy(np.ascontiguousarray(test_inputs)),
                   torch.from_numpy(np.ascontiguousarray(test_labels)),
                   n_classes=10, input_shape=tuple(train_inputs.shape[1:]), description=description)


def _subsample(dataset: Dataset, n_samples: int, random_state: np.random.Generator) -> Dataset:
    if n_samples >= len(dataset.train_labels):
        return dataset
    keep = torch.from_numpy(np.sort(random_state.permutation(len(dataset.train_labels))[:n_samples]))
    return Dataset(dataset.train_inputs[keep], dataset.train_labels[keep], dataset.test_inputs,
                   dataset.test_labels, dataset.n_classes, dataset.input_shape,
                   f"{dataset.description}, first {n_samples} training samples")
