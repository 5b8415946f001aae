"""TrialConfig: the one conversion between the sweeps' flat dicts and the frozen config tree."""

import numpy as np
import pytest

from study import config as config_module
from study.config import FLAT_KEYS, TrialConfig


def test_flat_dict_round_trips_every_key():
    flat = {"seed": 7, "width": 5, "delays": 64, "rank": 10, "observables": ["output", "hidden.0"],
            "learning_rate": 0.05, "window_size": 100, "n_steps": 1000, "bias": True}
    config = TrialConfig.from_flat_dict(flat)
    assert config.model.width == 5 and config.koopman.delays == 64 and config.seed == 7
    assert config.koopman.observables == ("output", "hidden.0")
    round_trip = config.to_flat_dict()
    assert set(round_trip) == set(FLAT_KEYS)
    assert TrialConfig.from_flat_dict(round_trip) == config


def test_defaults_are_the_papers_fcn_trial():
    config = TrialConfig()
    assert (config.model.width, config.optimizer.learning_rate, config.optimizer.batch_size) == (40, 0.1, 60)
    assert (config.training.n_steps, config.training.n_replicas, config.training.replica_noise) == (1000, 10, 0.001)
    assert config.model.bias is False and config.koopman.observables == ("output",)
    # The authors' FCN script: normalised MNIST, float32, weights recorded after each step.
    assert config.data.normalize_inputs is True and config.training.dtype == "float32"
    assert config.koopman.record_initial is False
    # Their Transformer script: scaled-normal initialisation, uncentred PCA projection.
    assert config.model.transformer_init == "scaled_normal" and config.koopman.pca_center is False


def test_every_flat_key_is_documented_in_the_module_docstring():
    undocumented = [key for key in FLAT_KEYS if key not in config_module.__doc__]
    assert undocumented == []


def test_integral_floats_and_numpy_scalars_are_accepted():
    assert TrialConfig.from_flat_dict({"n_steps": 1e3}).training.n_steps == 1000
    config = TrialConfig.from_flat_dict({"width": np.int64(5), "learning_rate": np.float32(0.5),
                                         "bias": np.bool_(True)})
    assert (config.model.width, config.optimizer.learning_rate, config.model.bias) == (5, 0.5, True)
    assert type(config.model.width) is int and type(config.model.bias) is bool


@pytest.mark.parametrize(
    "flat, pattern",
    [
        ({"widht": 40}, r"unknown config key 'widht' \(value 40\)"),
        ({"width": "wide"}, r"'width' expects int, got 'wide'"),
        ({"bias": 1}, r"'bias' expects bool, got 1"),
        ({"n_steps": 2.5}, r"'n_steps' expects int, got 2.5"),
        ({"width": 0}, r"'width' has impossible value 0"),
        ({"learning_rate": -0.1}, r"'learning_rate' has impossible value -0.1"),
        ({"activation": "swish"}, r"'activation' has impossible value 'swish'"),
        ({"dataset": "imagenet"}, r"'dataset' has impossible value 'imagenet'"),
        ({"delays": 999, "n_steps": 100}, r"'delays' has impossible value 999"),
        ({"window_size": 30, "record_every": 4}, r"'window_size' has impossible value 30"),
        ({"model": "transformer"}, r"'model' has impossible value 'transformer'"),
        ({"dataset": "mnist"}, r"'data_dir' has impossible value None"),
        ({"learning_rate": None}, r"'learning_rate' may not be None"),
        ({"observables": []}, r"'observables' needs at least one name"),
        ({"dtype": "float16"}, r"'dtype' has impossible value 'float16'"),
        ({"transformer_init": "xavier"}, r"'transformer_init' has impossible value 'xavier'"),
        ({"pca_center": "yes"}, r"'pca_center' expects bool, got 'yes'"),
        ({"record_initial": 1}, r"'record_initial' expects bool, got 1"),
    ],
)
def test_bad_values_raise_naming_the_key(flat, pattern):
    with pytest.raises(ValueError, match=pattern):
        TrialConfig.from_flat_dict(flat)


def test_config_is_frozen():
    config = TrialConfig()
    with pytest.raises(AttributeError):
        config.seed = 3
