"""Configuration of one trial: frozen dataclasses, built from a flat dict in one place.

The sweeps layer (Ray) speaks plain flat dicts; everything inside ``study`` uses the frozen
:class:`TrialConfig` tree. :meth:`TrialConfig.from_flat_dict` is the only conversion, and
:meth:`TrialConfig.to_flat_dict` inverts it exactly. Unknown keys, wrong types and impossible
values raise ``ValueError`` naming the key and the value.

Flat keys (default, then meaning):

=======================  ==============  ==========================================================
key                      default         meaning
=======================  ==============  ==========================================================
trial_type               "network"       "network" trains a net; "validation" runs study.validation
seed                     0               every random choice (init, replica noise, batches, split,
                                         synthetic data, grid jitter) flows from it
device                   "auto"          "auto" (CUDA when available, else CPU), "cpu", "cuda"
dataset                  "digits"        "digits" | "mnist" | "synthetic" | "modular_addition" |
                                         "cifar10"
data_dir                 None            folder of the MNIST IDX / CIFAR-10 python files
test_fraction            0.2             held-out share for digits / synthetic / t10k-only MNIST
synthetic_like           "digits"        shape imitated by "synthetic": "digits" (1,797 x 64) or
                                         "mnist" (10,000 x 784)
modulus                  113             p of (a + b) mod p
train_fraction           0.3             share of the p*p pairs used for training
max_train_samples        None            keep only the first n (shuffled, seeded) training samples
model                    "fcn"           "fcn" | "lenet5" | "transformer" | "resnet20"
width                    40              hidden units per FCN layer
depth                    1               number of FCN hidden layers
activation               "relu"          relu | tanh | gelu | sigmoid | linear (FCN)
bias                     False           FCN biases (the paper's nets have none)
d_model                  128             Transformer residual width
n_heads                  4               Transformer attention heads
d_mlp                    512             Transformer MLP width
init_scale               1.0             every initial weight multiplied by it (control: 0.8)
optimizer                "sgd"           "sgd" | "adamw"
learning_rate            0.1             step size
batch_size               60              samples per step (ignored when full_batch)
full_batch               False           every step sees the whole training set
weight_decay             0.0             decoupled for AdamW, L2 for SGD (torch semantics)
momentum                 0.0             SGD momentum
beta1, beta2             0.9, 0.98       AdamW betas (the paper's)
constant_weight_norm     False           rescale each replica's global weight norm to its
                                         initial value after every step (grokking control)
n_steps                  1000            optimizer steps (validation: snapshots per trajectory)
n_replicas               10              perturbed copies of the seed's initialisation
replica_noise            0.001           epsilon of w * (1 + epsilon * U(-1, 1))
replica_mode             "vectorized"    "vectorized" (one batched model) | "sequential" (one by
                                         one; the benchmark's and the tests' reference)
observables              "output"        "output", "all", a parameter name, or a comma-separated
                                         list / list of names (see study.observables)
record_every             1               record a snapshot after every k-th optimizer step
delays                   0               Hankel delays d of the DMD
rank                     None            DMD rank truncation (None keeps all)
window_size              None            None: one window over the run; n: consecutive windows of
                                         n training steps, each with its spectrum
sketch_dimension         None            CountSketch size of the streaming estimator (None = raw)
pca_components           None            batch-only PCA of each window's snapshots to n dimensions
resolution_variants      True            also refit each window after changes that cannot change
                                         the dynamics (study.resolution): the estimator's
                                         resolution, which the verdicts' margin never goes below
checkpoint_every         None            also hand a resumable state to `report` every n steps
eval_max_samples         10000           cap on samples used to evaluate train / test metrics
n_threads                None            torch and BLAS (numpy/scipy) threads during the trial,
                                         restored after; None leaves the process settings. 1 is
                                         much faster for the paper's small nets on a busy CPU
validation_method        "omd"           "omd" | "ogd" | "bisection" (trial_type "validation")
grid_jitter              0.0             jitter of the 5x5 grid of starts (0 = the paper's grid)
validation_step_size     0.01            eta of OMD / OGD
=======================  ==============  ==========================================================
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRIAL_TYPES = ("network", "validation")
DEVICES = ("auto", "cpu", "cuda")
DATASETS = ("digits", "mnist", "synthetic", "modular_addition", "cifar10")
SYNTHETIC_SHAPES = ("digits", "mnist")
MODELS = ("fcn", "lenet5", "transformer", "resnet20")
ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "linear")
OPTIMIZERS = ("sgd", "adamw")
REPLICA_MODES = ("vectorized", "sequential")
VALIDATION_METHODS = ("omd", "ogd", "bisection")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # built into scikit-learn: runs anywhere without a download
    data_dir: str | None = None  # only the folder-based data sets need one
    test_fraction: float = 0.2  # a usual held-out share when the data has no fixed split
    synthetic_like: str = "digits"  # matches the built-in handwritten default
    modulus: int = 113  # the paper's p
    train_fraction: float = 0.3  # the paper's grokking split
    max_train_samples: int | None = None  # None: all of it; set for quick runs


@dataclass(frozen=True)
class ModelConfig:
    model: str = "fcn"  # the paper's main experiment
    width: int = 40  # the paper's widest net, close to its "wide" regime
    depth: int = 1  # the paper's 784 -> h -> 10
    activation: str = "relu"  # the paper's
    bias: bool = False  # the paper's nets have no biases
    d_model: int = 128  # the paper's Transformer
    n_heads: int = 4  # the paper's Transformer
    d_mlp: int = 512  # the paper's Transformer
    init_scale: float = 1.0  # unscaled init; the grokking control uses 0.8


@dataclass(frozen=True)
class OptimizerConfig:
    optimizer: str = "sgd"  # the paper's FCN optimizer
    learning_rate: float = 0.1  # the paper's FCN learning rate
    batch_size: int = 60  # the paper's FCN batch size
    full_batch: bool = False  # mini-batches unless the experiment (grokking) says otherwise
    weight_decay: float = 0.0  # no regularisation unless asked (grokking run: 1.0)
    momentum: float = 0.0  # the paper's plain SGD
    beta1: float = 0.9  # the paper's AdamW betas
    beta2: float = 0.98  # the paper's AdamW betas
    constant_weight_norm: bool = False  # only the grokking control constrains the norm


@dataclass(frozen=True)
class TrainingConfig:
    n_steps: int = 1000  # one epoch of full MNIST at batch 60, as the paper
    n_replicas: int = 10  # the paper's M
    replica_noise: float = 0.001  # the paper's epsilon
    replica_mode: str = "vectorized"  # one batched model is the fast path
    checkpoint_every: int | None = None  # window ends are checkpoints already
    eval_max_samples: int = 10000  # all of MNIST's test split, bounded cost elsewhere
    n_threads: int | None = None  # the caller decides (Ray sets OMP_NUM_THREADS per worker)


@dataclass(frozen=True)
class KoopmanConfig:
    observables: tuple[str, ...] = ("output",)  # the paper records the output layer
    record_every: int = 1  # the paper records every step
    delays: int = 0  # plain DMD unless the experiment asks for a Hankel embedding
    rank: int | None = None  # keep all singular triplets unless asked (networks: 10)
    window_size: int | None = None  # one window over the whole run
    sketch_dimension: int | None = None  # raw features are small for the paper's observables
    pca_components: int | None = None  # only the Transformer run reduces by PCA (to 10)
    resolution_variants: bool = True  # verdicts need the resolution; ~5 extra fits per window


@dataclass(frozen=True)
class ValidationConfig:
    validation_method: str = "omd"  # the paper's reference method
    grid_jitter: float = 0.0  # the paper's exact 5x5 grid of starts
    validation_step_size: float = 0.01  # the paper's eta


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
    "koopman": KoopmanConfig,
    "validation": ValidationConfig,
}


@dataclass(frozen=True)
class TrialConfig:
    """One trial's full configuration (a frozen tree; see the module docstring for keys)."""

    trial_type: str = "network"  # most experiments train a network
    seed: int = 0  # a fixed default keeps ad-hoc runs reproducible
    device: str = "auto"  # CUDA when present, else CPU
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    koopman: KoopmanConfig = field(default_factory=KoopmanConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self):
        validate(self)

    @classmethod
    def from_flat_dict(cls, flat: dict[str, Any]) -> "TrialConfig":
        """Build from the flat keys of the module docstring; unknown keys raise ValueError."""
        if isinstance(flat, TrialConfig):
            return flat
        top_level, sections = {}, {name: {} for name in SECTIONS}
        for key, value in dict(flat).items():
            if key not in FLAT_KEYS:
                raise ValueError(f"unknown config key {key!r} (value {value!r})")
            section, field_type = FLAT_KEYS[key]
            value = _coerce(key, value, field_type)
            (sections[section] if section else top_level)[key] = value
        built = {name: SECTIONS[name](**values) for name, values in sections.items()}
        return cls(**top_level, **built)

    def to_flat_dict(self) -> dict[str, Any]:
        """The flat dict that :meth:`from_flat_dict` turns back into this config."""
        flat = {name: getattr(self, name) for name in ("trial_type", "seed", "device")}
        for section in SECTIONS:
            flat.update(dataclasses.asdict(getattr(self, section)))
        flat["observables"] = ",".join(self.koopman.observables)
        return flat


# The keys that shape each trial type (a validation trial trains no network): a report lists
# only these, so a reader is not shown fifty settings that were never used.
_TRIAL_TYPE_KEYS = {
    "network": ("data", "model", "optimizer", "training", "koopman"),
    "validation": ("n_steps", "koopman", "validation"),
}


def keys_for_trial_type(trial_type: str) -> set[str]:
    """Flat keys that apply to ``trial_type`` (sections by name, or single keys)."""
    keys = {"trial_type", "seed", "device"}
    for item in _TRIAL_TYPE_KEYS.get(trial_type, tuple(SECTIONS)):
        if item in SECTIONS:
            keys |= {f.name for f in dataclasses.fields(SECTIONS[item])}
        else:
            keys.add(item)
    return keys


def _field_types() -> dict[str, tuple[str | None, Any]]:
    keys = {"trial_type": (None, "str"), "seed": (None, "int"), "device": (None, "str")}
    for section, section_class in SECTIONS.items():
        for item in dataclasses.fields(section_class):
            keys[item.name] = (section, item.type)
    return keys


FLAT_KEYS = _field_types()


def _coerce(key: str, value: Any, field_type: str) -> Any:
    """Check the type of one flat value (annotations are strings under postponed evaluation)."""
    optional = "None" in field_type
    if value is None:
        if optional:
            return None
        raise ValueError(f"config key {key!r} may not be None")
    if field_type.startswith("tuple"):
        names = value.split(",") if isinstance(value, str) else list(value)
        names = tuple(str(name).strip() for name in names if str(name).strip())
        if not names:
            raise ValueError(f"config key {key!r} needs at least one name, got {value!r}")
        return names
    # numbers.* accept numpy scalars too (grids built with numpy, values read back from parquet).
    if field_type.startswith("bool"):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif field_type.startswith("int"):
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)  # YAML and Tune sometimes hand 1e3 for 1000
    elif field_type.startswith("float"):
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            return float(value)
    elif field_type.startswith("str"):
        if isinstance(value, str):
            return value
    raise ValueError(f"config key {key!r} expects {field_type}, got {value!r}")


def _require(condition: bool, key: str, value: Any, why: str) -> None:
    if not condition:
        raise ValueError(f"config key {key!r} has impossible value {value!r}: {why}")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    _require(value in choices, key, value, f"expected one of {choices}")


def validate(config: TrialConfig) -> None:
    """Raise ValueError naming the first key whose value is impossible."""
    data, model, optimizer = config.data, config.model, config.optimizer
    training, koopman = config.training, config.koopman
    _choice("trial_type", config.trial_type, TRIAL_TYPES)
    _choice("device", config.device, DEVICES)
    _require(config.seed >= 0, "seed", config.seed, "must be >= 0")
    _choice("dataset", data.dataset, DATASETS)
    _choice("synthetic_like", data.synthetic_like, SYNTHETIC_SHAPES)
    _require(0 < data.test_fraction < 1, "test_fraction", data.test_fraction, "must be in (0, 1)")
    _require(0 < data.train_fraction < 1, "train_fraction", data.train_fraction, "must be in (0, 1)")
    _require(data.modulus >= 2, "modulus", data.modulus, "must be >= 2")
    _positive_or_none("max_train_samples", data.max_train_samples)
    _choice("model", model.model, MODELS)
    _choice("activation", model.activation, ACTIVATIONS)
    for key in ("width", "depth", "d_model", "n_heads", "d_mlp"):
        _require(getattr(model, key) >= 1, key, getattr(model, key), "must be >= 1")
    _require(model.d_model % model.n_heads == 0, "n_heads", model.n_heads, "must divide d_model")
    _require(model.init_scale > 0, "init_scale", model.init_scale, "must be > 0")
    _choice("optimizer", optimizer.optimizer, OPTIMIZERS)
    _require(optimizer.learning_rate > 0, "learning_rate", optimizer.learning_rate, "must be > 0")
    _require(optimizer.batch_size >= 1, "batch_size", optimizer.batch_size, "must be >= 1")
    _require(optimizer.weight_decay >= 0, "weight_decay", optimizer.weight_decay, "must be >= 0")
    _require(0 <= optimizer.momentum < 1, "momentum", optimizer.momentum, "must be in [0, 1)")
    for key in ("beta1", "beta2"):
        _require(0 <= getattr(optimizer, key) < 1, key, getattr(optimizer, key), "must be in [0, 1)")
    _require(training.n_steps >= 2, "n_steps", training.n_steps, "must be >= 2")
    _require(training.n_replicas >= 1, "n_replicas", training.n_replicas, "must be >= 1")
    _require(training.replica_noise >= 0, "replica_noise", training.replica_noise, "must be >= 0")
    _choice("replica_mode", training.replica_mode, REPLICA_MODES)
    _positive_or_none("checkpoint_every", training.checkpoint_every)
    _require(training.eval_max_samples >= 1, "eval_max_samples", training.eval_max_samples, ">= 1")
    _positive_or_none("n_threads", training.n_threads)
    _validate_koopman(config)
    _choice("validation_method", config.validation.validation_method, VALIDATION_METHODS)
    jitter = config.validation.grid_jitter
    _require(jitter >= 0, "grid_jitter", jitter, "must be >= 0")
    step_size = config.validation.validation_step_size
    _require(step_size > 0, "validation_step_size", step_size, "must be > 0")
    if config.trial_type == "network":
        _validate_pairing(config)


def _positive_or_none(key: str, value: int | None) -> None:
    _require(value is None or value >= 1, key, value, "must be None or >= 1")


def _validate_koopman(config: TrialConfig) -> None:
    koopman, n_steps = config.koopman, config.training.n_steps
    _require(koopman.record_every >= 1, "record_every", koopman.record_every, "must be >= 1")
    _require(koopman.delays >= 0, "delays", koopman.delays, "must be >= 0")
    for key in ("rank", "sketch_dimension", "pca_components"):
        _positive_or_none(key, getattr(koopman, key))
    window = koopman.window_size
    _positive_or_none("window_size", window)
    if window is not None:
        _require(window <= n_steps, "window_size", window, f"exceeds n_steps {n_steps}")
        _require(window % koopman.record_every == 0, "window_size", window,
                 f"must be a multiple of record_every {koopman.record_every}")
    span = window if window is not None else n_steps
    snapshots = span // koopman.record_every
    _require(snapshots >= koopman.delays + 2, "delays", koopman.delays,
             f"a window of {snapshots} snapshots needs delays <= {snapshots - 2}")
    _require(not (koopman.pca_components and koopman.sketch_dimension), "pca_components",
             koopman.pca_components, "PCA and sketching exclude each other")


def _validate_pairing(config: TrialConfig) -> None:
    """Combinations of data and model that cannot train together."""
    dataset, model = config.data.dataset, config.model.model
    sequence_data = dataset == "modular_addition"
    _require(sequence_data == (model == "transformer"), "model", model,
             f"the transformer trains on modular_addition only, and only it does ({dataset!r})")
    if model == "resnet20":
        _require(dataset == "cifar10", "model", model, "resnet20 needs 3-channel cifar10 images")
    if dataset in ("mnist", "cifar10"):
        _require(config.data.data_dir is not None, "data_dir", None,
                 f"dataset {dataset!r} reads its files from a folder; set data_dir")
