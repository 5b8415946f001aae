"""Vectorised replicas: each replica follows exactly the trajectory it would follow alone.

The comparisons train in float64. In float32 the batched and the one-by-one computations
reduce in a different order, which differs between CPUs, and Adam's division by
sqrt(v) + eps amplifies that round-off where v is near zero (8e-6 after 50 LeNet steps on one
machine, 1e-7 on another): a float32 tolerance would either be loose enough to hide a real
error or fail by CPU. In float64 the same round-off is about 1e-16 relative, so a tolerance of
1e-9 leaves six orders of magnitude of headroom for Adam's amplification and still catches any
error in the vectorisation (a wrong index or a shared optimizer state moves weights by 1e-3 or
more).
"""

import numpy as np
import pytest
import torch

from study.config import ModelConfig, OptimizerConfig
from study.replicas import (SequentialReplicas, VectorizedReplicas, constrain_norms, evaluate,
                            initial_parameters, make_model, replica_norms)

CPU = torch.device("cpu")
FLOAT64_TOLERANCE = 1e-9  # see the module docstring


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def train_both(model_config, optimizer_config, input_shape, inputs, labels, n_steps=50,
               n_replicas=4, constant_norm=False, batch_size=16, vocabulary=None):
    model = make_model(model_config, input_shape, int(labels.max()) + 1, vocabulary, seed=0).double()
    stacks = initial_parameters(model, n_replicas, 0.001, torch.Generator().manual_seed(1))
    targets = replica_norms(list(stacks.values()))
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randint(0, len(labels), (batch_size,), generator=generator) for _ in range(n_steps)]
    results = []
    for replica_class in (VectorizedReplicas, SequentialReplicas):
        replicas = replica_class(model, stacks, optimizer_config, CPU)
        for batch in batches:
            replicas.train_step(inputs[batch], labels[batch])
            if constant_norm:
                constrain_norms(replicas, targets)
        results.append(replicas)
    return results, stacks, targets


def assert_same_weights(vectorized, sequential, tolerance=FLOAT64_TOLERANCE):
    left, right = vectorized.stacked_parameters(), sequential.stacked_parameters()
    assert set(left) == set(right)
    for name in left:
        assert left[name].dtype == torch.float64, f"{name} trained in {left[name].dtype}"
        # msg as a callable keeps torch's report (greatest absolute and relative difference).
        torch.testing.assert_close(left[name], right[name], atol=tolerance, rtol=0,
                                   msg=lambda report, name=name: f"{name}: {report}")


def digits_like(n_samples=120, side=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_samples, 1, side, side, generator=generator, dtype=torch.float64), \
        torch.randint(0, 10, (n_samples,), generator=generator)


@pytest.mark.parametrize("depth, bias", [(1, False), (2, True)])
def test_vectorized_fcn_equals_replicas_trained_one_by_one(depth, bias):
    inputs, labels = digits_like()
    (vectorized, sequential), stacks, _ = train_both(
        ModelConfig(width=12, depth=depth, bias=bias), OptimizerConfig(learning_rate=0.1), (1, 8, 8),
        inputs, labels)
    assert_same_weights(vectorized, sequential)
    moved = (vectorized.stacked_parameters()["output.weight"] - stacks["output.weight"]).abs().max()
    assert moved > 1e-2  # 50 steps really trained the replicas
    spread = vectorized.stacked_parameters()["output.weight"].std(dim=0).max()
    assert spread > 0  # and the replicas stayed distinct


def test_vmapped_lenet_with_adamw_equals_one_by_one():
    inputs, labels = digits_like(n_samples=64)
    optimizer = OptimizerConfig(optimizer="adamw", learning_rate=1e-3, weight_decay=0.1)
    (vectorized, sequential), _, _ = train_both(ModelConfig(model="lenet5"), optimizer, (1, 8, 8),
                                                inputs, labels, n_steps=50, n_replicas=3)
    assert_same_weights(vectorized, sequential)
    losses_vectorized, accuracy_vectorized = evaluate(vectorized, inputs, labels)
    losses_sequential, _ = evaluate(sequential, inputs, labels)
    torch.testing.assert_close(losses_vectorized, losses_sequential, atol=FLOAT64_TOLERANCE, rtol=0)


def test_transformer_with_constant_norm_equals_one_by_one_and_keeps_each_norm():
    tokens = torch.tensor([[a, b, 7] for a in range(7) for b in range(7)])
    labels = (tokens[:, 0] + tokens[:, 1]) % 7
    model_config = ModelConfig(model="transformer", d_model=16, n_heads=2, d_mlp=32, init_scale=0.8)
    optimizer = OptimizerConfig(optimizer="adamw", learning_rate=1e-2, beta2=0.98)
    (vectorized, sequential), _, targets = train_both(
        model_config, optimizer, (3,), tokens, labels, n_steps=20, n_replicas=3, constant_norm=True,
        batch_size=49, vocabulary=8)
    assert_same_weights(vectorized, sequential)
    norms = replica_norms(list(vectorized.stacked_parameters().values()))
    torch.testing.assert_close(norms, targets, atol=FLOAT64_TOLERANCE, rtol=0)


def test_replica_noise_is_a_relative_uniform_perturbation():
    model = make_model(ModelConfig(width=40), (1, 8, 8), 10, None, seed=0)
    stacks = initial_parameters(model, 10, 0.001, torch.Generator().manual_seed(5))
    base = model.output.weight.detach()
    ratio = (stacks["output.weight"] / base).numpy()  # (10, 10, 40): 1 + 0.001 U(-1, 1)
    assert np.all(np.abs(ratio - 1) <= 0.001 + 1e-6)
    assert np.abs(ratio - 1).max() > 0.00099  # fills the interval
    assert abs((ratio - 1).mean()) < 5e-5  # centred (sd of the mean of 4,000 draws ~ 9e-6)
    again = initial_parameters(model, 10, 0.001, torch.Generator().manual_seed(5))
    assert torch.equal(again["output.weight"], stacks["output.weight"])


def test_base_initialisation_depends_only_on_the_seed():
    torch.manual_seed(123)
    first = make_model(ModelConfig(), (1, 8, 8), 10, None, seed=4).output.weight
    torch.manual_seed(999)
    second = make_model(ModelConfig(), (1, 8, 8), 10, None, seed=4).output.weight
    assert torch.equal(first, second)
    assert not torch.equal(first, make_model(ModelConfig(), (1, 8, 8), 10, None, seed=5).output.weight)
