"""Checking, before Ray starts, that the data folders a sweep names are there.

A sweep whose ``data_dir`` is wrong would otherwise start Ray and fail every trial one by one.
The check looks for the files ``study.data`` reads (without reading them, so the driver never
imports torch for a folder that is fine); for a folder that fails it, the message is the one
``study.data`` raises, so a person sees the same words before and during a sweep.

Pure Python: no Ray here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# The files each folder-based data set needs (a name, or the same name with .gz for MNIST).
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{index}" for index in range(1, 6)) + ("test_batch",)


def _looks_complete(dataset: str, folder: Path) -> bool:
    if dataset == "mnist":
        return folder.is_dir() and all((folder / name).is_file() or (folder / f"{name}.gz").is_file()
                                       for name in MNIST_TEST_FILES)
    if dataset == "cifar10":
        return any(all((candidate / name).is_file() for name in CIFAR10_FILES)
                   for candidate in (folder, folder / "cifar-10-batches-py"))
    return True


def _loader_message(dataset: str, folder: Path) -> str | None:
    """What study.data says of ``folder`` (None where it loads after all)."""
    import numpy as np

    from study.data import MissingDataError, load_cifar10, load_mnist  # imports torch: only on failure

    try:
        if dataset == "mnist":
            load_mnist(folder, 0.2, np.random.default_rng(0))
        else:
            load_cifar10(folder)
    except MissingDataError as error:
        return f"{type(error).__name__}: {error}"
    return None


def missing_data_folders(configs: Iterable[dict]) -> list[str]:
    """One message per distinct (data set, folder) of ``configs`` that ``study.data`` would reject."""
    messages = []
    for dataset, folder in sorted({(config.get("dataset"), config.get("data_dir")) for config in configs
                                   if config.get("dataset") in ("mnist", "cifar10") and config.get("data_dir")}):
        if not _looks_complete(dataset, Path(folder)):
            message = _loader_message(dataset, Path(folder))
            if message:
                messages.append(message)
    return messages
