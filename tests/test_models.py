"""The paper's networks: architectures checked against hand-computed forms and layer counts."""

import math

import pytest
import torch
from torch import nn

from study.config import ModelConfig
from study.models import ACTIVATIONS, OneLayerTransformer, build_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def seeded(config, input_shape, n_classes=10, vocabulary=None, seed=0):
    torch.manual_seed(seed)
    return build_model(config, input_shape, n_classes, vocabulary)


def test_fcn_input_size_follows_the_data_and_has_no_biases_by_default():
    model = seeded(ModelConfig(width=5), (1, 8, 8))
    shapes = {name: tuple(parameter.shape) for name, parameter in model.named_parameters()}
    assert shapes == {"hidden.0.weight": (5, 64), "output.weight": (10, 5)}
    mnist = seeded(ModelConfig(width=40, depth=2, bias=True), (1, 28, 28))
    assert mnist.hidden[0].weight.shape == (40, 784) and mnist.hidden[1].bias.shape == (40,)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_fcn_computes_the_layers_by_hand(activation):
    model = seeded(ModelConfig(width=6, depth=2, activation=activation, bias=True), (1, 4, 4))
    inputs = torch.rand(3, 1, 4, 4)
    function = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "linear": lambda x: x}[activation]
    values = inputs.reshape(3, 16)
    for layer in model.hidden:
        values = function(values @ layer.weight.T + layer.bias)
    expected = values @ model.output.weight.T + model.output.bias
    torch.testing.assert_close(model(inputs), expected)


def test_init_scale_multiplies_every_parameter():
    base = seeded(ModelConfig(model="lenet5"), (1, 28, 28), seed=3)
    scaled = seeded(ModelConfig(model="lenet5", init_scale=0.8), (1, 28, 28), seed=3)
    for (name, left), (_, right) in zip(base.named_parameters(), scaled.named_parameters()):
        torch.testing.assert_close(right, 0.8 * left, msg=name)


def test_lenet5_is_the_classic_network_on_mnist_and_runs_on_digits():
    model = seeded(ModelConfig(model="lenet5"), (1, 28, 28))
    assert model.fc1.in_features == 16 * 5 * 5  # 28 -> 28 -> 14 -> 10 -> 5
    n_parameters = sum(parameter.numel() for parameter in model.parameters())
    assert n_parameters == 61706  # LeCun et al.'s LeNet-5 with a 10-way output layer
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert seeded(ModelConfig(model="lenet5"), (1, 8, 8))(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_transformer_matches_the_papers_description():
    model = seeded(ModelConfig(model="transformer"), (3,), n_classes=113, vocabulary=114)
    assert not any(isinstance(module, nn.LayerNorm) for module in model.modules())
    assert model.mlp_output.weight.shape == (128, 512) and model.mlp_input.weight.shape == (512, 128)
    assert model.position.shape == (3, 128) and model.position.requires_grad  # learned positions
    tokens = torch.tensor([[3, 5, 113], [100, 20, 113]])
    assert model(tokens).shape == (2, 113)


def test_transformer_default_init_is_the_authors_scaled_normal():
    # The authors' grokking script: weights randn / sqrt(d_model), the unembedding
    # randn / sqrt(d_vocab) (d_vocab = p + 1 = 114), biases zero. Expected squared global norm
    # = sum of numel * variance: embedding 114 + positions 3 + q, k, v, o 4 * 128 + MLP in and
    # out 2 * 512 + unembedding 113 * 128 / 114 = 1779.9, a norm of 42.19.
    model = seeded(ModelConfig(model="transformer"), (3,), n_classes=113, vocabulary=114)
    parameters = dict(model.named_parameters())
    norm = torch.sqrt(sum(parameter.pow(2).sum() for parameter in parameters.values())).item()
    assert abs(norm - 42.19) < 0.5
    assert not parameters["mlp_input.bias"].any() and not parameters["mlp_output.bias"].any()
    for name, parameter in parameters.items():
        if not name.endswith(".bias"):
            expected = 1 / math.sqrt(114 if name == "unembed.weight" else 128)
            assert abs(parameter.std().item() / expected - 1) < 0.1, name
    torch_default = seeded(ModelConfig(model="transformer", transformer_init="torch_default"), (3,),
                           n_classes=113, vocabulary=114)
    embedding_share = torch_default.embed.weight.norm() / torch.sqrt(
        sum(parameter.pow(2).sum() for parameter in torch_default.parameters()))
    assert embedding_share > 0.95 and torch_default.mlp_output.bias.abs().max() > 0  # N(0, 1) table


def full_causal_transformer(model, tokens):
    """The textbook computation over every position with a causal mask (the reference)."""
    batch, length = tokens.shape
    heads, width = model.n_heads, model.embed.embedding_dim
    residual = model.embed(tokens) + model.position[:length]

    def split(values):
        return values.view(batch, length, heads, width // heads).transpose(1, 2)

    query, key, value = split(model.query(residual)), split(model.key(residual)), split(model.value(residual))
    scores = query @ key.transpose(-1, -2) / math.sqrt(width // heads)
    mask = torch.tril(torch.ones(length, length, dtype=torch.bool))
    attended = (scores.masked_fill(~mask, float("-inf")).softmax(-1) @ value).transpose(1, 2)
    residual = residual + model.attention_output(attended.reshape(batch, length, width))
    residual = residual + model.mlp_output(torch.relu(model.mlp_input(residual)))
    return model.unembed(residual)[:, -1]


def test_transformer_equals_the_full_causal_computation_and_reads_every_token():
    model = seeded(ModelConfig(model="transformer", d_model=16, n_heads=4, d_mlp=32), (3,), 7, 8)
    tokens = torch.tensor([[a, b, 7] for a in range(7) for b in range(7)])
    torch.testing.assert_close(model(tokens), full_causal_transformer(model, tokens))
    base, changed_b = torch.tensor([[1, 2, 7]]), torch.tensor([[1, 3, 7]])
    assert not torch.allclose(model(base), model(changed_b))  # the '=' position attends to b


def test_transformer_heads_split_the_model_width():
    model = OneLayerTransformer(8, 7, d_model=16, n_heads=4, d_mlp=32)
    assert model.n_heads == 4 and model.query.weight.shape == (16, 16)


def test_resnet20_has_twenty_weighted_layers():
    model = seeded(ModelConfig(model="resnet20"), (3, 32, 32))
    convolutions = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    assert len(convolutions) + len(linears) == 20
    n_parameters = sum(parameter.numel() for parameter in model.parameters())
    assert 0.26e6 < n_parameters < 0.28e6  # He et al. report 0.27M
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
