"""The data sets: the IDX reader against the real MNIST test split, splits, synthetic data."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from study.config import DataConfig
from study.data import (MissingDataError, load_cifar10, load_dataset, load_mnist, modular_addition,
                        read_idx, synthetic_classification)

from helpers import write_cifar10_folder

REPO = Path(__file__).resolve().parents[1]
MNIST_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
                    REPO / ".." / "shared" / "data" / "mnist"]
MNIST_FOLDER = next((path for path in MNIST_CANDIDATES if path.is_dir()), None)
needs_mnist = pytest.mark.skipif(MNIST_FOLDER is None,
                                 reason="shared MNIST folder ../shared/data/mnist is absent")
# The published class counts of MNIST's t10k labels (LeCun et al.'s test split).
T10K_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def rng(seed=0):
    return np.random.default_rng(seed)


@needs_mnist
def test_idx_reader_reads_the_real_mnist_test_split():
    images = read_idx(MNIST_FOLDER / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST_FOLDER / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == T10K_LABEL_COUNTS
    assert images.max() == 255 and images.min() == 0


@needs_mnist
def test_idx_reader_accepts_uncompressed_files(tmp_path):
    source = MNIST_FOLDER / "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(source.read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-labels-idx1-ubyte"), read_idx(source))


@needs_mnist
def test_mnist_t10k_only_folder_is_split_with_the_seed():
    first = load_mnist(MNIST_FOLDER, 0.2, rng(1))
    again = load_mnist(MNIST_FOLDER, 0.2, rng(1))
    assert first.train_inputs.shape == (8000, 1, 28, 28) and first.test_inputs.shape == (2000, 1, 28, 28)
    assert torch.equal(first.test_labels, again.test_labels)
    counts = np.bincount(torch.cat([first.train_labels, first.test_labels]).numpy(), minlength=10)
    assert counts.tolist() == T10K_LABEL_COUNTS  # a split, not a resample
    assert float(first.train_inputs.max()) == 1.0


def test_missing_mnist_folder_names_folder_and_files(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(MissingDataError, match=r"nowhere.*t10k-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        load_mnist(folder, 0.2, rng())
    with pytest.raises(FileNotFoundError, match="data_batch_1.*test_batch"):
        load_cifar10(tmp_path)


def test_idx_reader_rejects_truncated_files(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # declares 5 labels, holds 2
    with pytest.raises(ValueError, match="holds 2 values"):
        read_idx(path)


@needs_mnist
def test_mnist_inputs_are_normalised_with_the_authors_constants():
    raw = load_dataset(DataConfig(dataset="mnist", data_dir=str(MNIST_FOLDER), normalize_inputs=False), rng(1))
    normalised = load_dataset(DataConfig(dataset="mnist", data_dir=str(MNIST_FOLDER)), rng(1))
    assert float(raw.train_inputs.min()) == 0.0 and float(raw.train_inputs.max()) == 1.0
    # transforms.Normalize((0.1307,), (0.3081,)): MNIST's training-set mean and std.
    torch.testing.assert_close(normalised.train_inputs, (raw.train_inputs - 0.1307) / 0.3081)
    torch.testing.assert_close(normalised.test_inputs, (raw.test_inputs - 0.1307) / 0.3081)
    # The t10k images are close to, not exactly at, the training set's statistics.
    assert abs(float(normalised.train_inputs.mean())) < 0.02
    assert abs(float(normalised.train_inputs.std()) - 1) < 0.02


@pytest.mark.parametrize("dataset", ["digits", "synthetic"])
def test_other_image_sets_are_standardised_with_their_training_statistics(dataset):
    raw = load_dataset(DataConfig(dataset=dataset, normalize_inputs=False), rng(2))
    data = load_dataset(DataConfig(dataset=dataset), rng(2))
    assert abs(float(data.train_inputs.mean())) < 1e-5 and abs(float(data.train_inputs.std()) - 1) < 1e-4
    mean, std = raw.train_inputs.mean(), raw.train_inputs.std()
    torch.testing.assert_close(data.test_inputs, (raw.test_inputs - mean) / std)  # train statistics
    assert torch.equal(data.train_labels, raw.train_labels)


def test_modular_addition_tokens_are_not_normalised():
    data = load_dataset(DataConfig(dataset="modular_addition", modulus=7), rng(0))
    assert data.train_inputs.dtype == torch.int64 and int(data.train_inputs.max()) == 7


def test_digits_is_the_default_and_split_depends_on_the_seed():
    first = load_dataset(DataConfig(), rng(0))
    assert first.input_shape == (1, 8, 8) and len(first.train_labels) + len(first.test_labels) == 1797
    assert len(first.test_labels) == round(0.2 * 1797)
    assert torch.equal(first.test_labels, load_dataset(DataConfig(), rng(0)).test_labels)
    assert not torch.equal(first.test_labels, load_dataset(DataConfig(), rng(1)).test_labels)


def test_synthetic_data_imitates_the_handwritten_shape_and_is_seeded():
    inputs, labels = synthetic_classification("digits", rng(3))
    assert inputs.shape == (1797, 1, 8, 8) and inputs.min() >= 0 and inputs.max() <= 1
    assert set(np.unique(labels)) == set(range(10))
    again, _ = synthetic_classification("digits", rng(3))
    np.testing.assert_array_equal(inputs, again)
    mnist_like, _ = synthetic_classification("mnist", rng(3))
    assert mnist_like.shape == (10000, 1, 28, 28)


def test_modular_addition_holds_every_pair_once_with_correct_labels():
    data = modular_addition(7, 0.3, rng(0))
    tokens = torch.cat([data.train_inputs, data.test_inputs])
    labels = torch.cat([data.train_labels, data.test_labels])
    assert len(data.train_labels) == int(0.3 * 49) and len({tuple(row[:2].tolist()) for row in tokens}) == 49
    assert torch.equal(labels, (tokens[:, 0] + tokens[:, 1]) % 7)
    assert torch.all(tokens[:, 2] == 7)  # the "=" token


def test_cifar10_python_format_is_read(tmp_path):
    write_cifar10_folder(tmp_path, images_per_batch=4)
    data = load_cifar10(tmp_path)
    assert data.train_inputs.shape == (20, 3, 32, 32) and data.test_inputs.shape == (4, 3, 32, 32)
    with open(tmp_path / "test_batch", "rb") as stream:
        raw = pickle.load(stream)
    # The channel-major layout of the format: the first 1024 values are the red plane.
    np.testing.assert_allclose(data.test_inputs[0, 0].numpy().ravel(), raw[b"data"][0, :1024] / 255.0)
    assert data.test_labels.tolist() == raw[b"labels"]
