"""The networks of the paper's experiments, as plain ``torch.nn.Module`` objects.

Every model maps a batch of inputs to logits ``(batch, n_classes)`` and declares
``observable_aliases``: names such as ``"output"`` that :mod:`study.observables` resolves to
parameter names. Models are written so that ``torch.func.functional_call`` + ``vmap`` can run
many replicas at once (no in-place buffers: ResNet-20's batch norm keeps no running
statistics, see :class:`ResNet20`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional

from study.config import ModelConfig

ACTIVATIONS = {
    "relu": functional.relu,
    "tanh": torch.tanh,
    "gelu": functional.gelu,
    "sigmoid": torch.sigmoid,
    "linear": lambda values: values,
}


class FullyConnected(nn.Module):
    """``input -> width -> ... -> n_classes`` with ``depth`` hidden layers (the paper: depth 1).

    Parameters are ``hidden.{i}.weight`` ``(width, fan_in)`` and ``output.weight``
    ``(n_classes, width)`` (plus ``.bias`` when ``bias``). The input is flattened. The default
    PyTorch (Kaiming-uniform) initialisation is kept: the paper's scripts use nn.Linear's.
    """

    observable_aliases = {"output": ("output.weight",)}

    def __init__(self, n_inputs: int, n_classes: int, *, width: int, depth: int,
                 activation: str, bias: bool):
        super().__init__()
        sizes = [n_inputs] + [width] * depth
        self.hidden = nn.ModuleList(
            nn.Linear(fan_in, fan_out, bias=bias) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
        )
        self.output = nn.Linear(sizes[-1], n_classes, bias=bias)
        self.activation_name = activation

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        layers = [(f"hidden.{index}", layer) for index, layer in enumerate(self.hidden)]
        parameters = {f"{name}.{kind}": getattr(layer, kind).unsqueeze(0)  # one replica
                      for name, layer in layers + [("output", self.output)]
                      for kind in ("weight", "bias") if getattr(layer, kind) is not None}
        return fully_connected_logits(parameters, inputs, depth=len(self.hidden),
                                      activation=self.activation_name)[0]  # (B, n_classes)


def fully_connected_logits(parameters: Mapping[str, torch.Tensor], inputs: torch.Tensor, *,
                           depth: int, activation: str) -> torch.Tensor:
    """The forward pass of :class:`FullyConnected`, for M replicas at once: ``(M, B, n_classes)``.

    ``parameters``: the module's names with a leading replica axis, ``hidden.{i}.weight``
    ``(M, width, fan_in)`` and ``output.weight`` ``(M, n_classes, width)``, biases ``(M, out)``
    when present. ``inputs``: ``(B, ...)``, shared by all replicas and flattened. The one
    source of the architecture: the module runs it with M = 1, the vectorised replicas with
    their stacks. The first layer is one GEMM for all replicas and later ones a batched
    product, which on a CPU beats ``vmap`` over the module.
    """
    function = ACTIVATIONS[activation]
    values = inputs.flatten(1)  # (B, n_inputs), shared by all replicas
    names = [f"hidden.{index}" for index in range(depth)] + ["output"]
    for position, name in enumerate(names):
        weight = parameters[f"{name}.weight"]  # (M, out, in)
        if position == 0:
            # One GEMM for all replicas: (B, in) @ (in, M*out) -> (M, B, out).
            n_replicas, n_out = weight.shape[:2]
            values = (values @ weight.reshape(-1, weight.shape[2]).T)
            values = values.view(-1, n_replicas, n_out).transpose(0, 1)
        else:
            values = torch.bmm(values, weight.transpose(1, 2))  # (M, B, out)
        bias = parameters.get(f"{name}.bias")
        if bias is not None:
            values = values + bias.unsqueeze(1)
        if name != "output":
            values = function(values)
    return values  # (M, B, n_classes)


class LeNet5(nn.Module):
    """LeNet-5 (conv 6@5x5, pool, conv 16@5x5, pool, 120, 84, n_classes), ReLU, max pooling.

    ReLU and max pooling as in common modern LeNet-5 code (the paper does not say). For inputs
    smaller than 16 pixels (8x8 digits) the second convolution is padded so the map stays
    non-empty; on 28x28 MNIST it is the classic network.
    """

    observable_aliases = {"output": ("output.weight",)}

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        channels, height, _ = input_shape
        second_padding = 2 if height < 16 else 0
        self.conv1 = nn.Conv2d(channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=second_padding)
        side = (height // 2 + 2 * second_padding - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.output = nn.Linear(84, n_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = functional.max_pool2d(functional.relu(self.conv1(inputs)), 2)  # (B, 6, H/2, W/2)
        values = functional.max_pool2d(functional.relu(self.conv2(values)), 2)  # (B, 16, s, s)
        values = functional.relu(self.fc1(values.flatten(1)))
        values = functional.relu(self.fc2(values))
        return self.output(values)


class OneLayerTransformer(nn.Module):
    """The paper's grokking Transformer: one block, no LayerNorm, learned positions, ReLU MLP.

    Tokens ``(B, 3)`` = ``[a, b, =]``; the logits of the last position predict (a + b) mod p.
    Attention has no biases; the MLP has biases (as in the grokking literature's model, which
    the paper follows). ``mlp_output.weight`` ``(d_model, d_mlp)`` is the paper's observable.

    ``init="scaled_normal"`` is the authors' grokking script: every weight, the embedding and
    the positions ``N(0, 1/d_model)`` (the MLP output matrix too, not ``1/d_mlp``), the
    unembedding ``N(0, 1/vocabulary)``, the MLP biases zero; its global norm is about 42 at
    p = 113. ``init="torch_default"`` keeps the layers' own: ``nn.Embedding`` ``N(0, 1)``
    (97% of a global norm of about 123), ``nn.Linear`` Kaiming-uniform weights and biases.
    Our unembedding has p outputs; the authors' has one per token (p + 1), a logit for "="
    that is never a label (our choice: no output for a class that cannot occur).
    """

    observable_aliases = {"output": ("unembed.weight",), "mlp_out": ("mlp_output.weight",)}

    def __init__(self, vocabulary: int, n_classes: int, *, d_model: int, n_heads: int,
                 d_mlp: int, n_positions: int = 3, init: str = "scaled_normal"):
        super().__init__()
        self.n_heads = n_heads
        self.embed = nn.Embedding(vocabulary, d_model)
        self.position = nn.Parameter(torch.randn(n_positions, d_model) / math.sqrt(d_model))
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.attention_output = nn.Linear(d_model, d_model, bias=False)
        self.mlp_input = nn.Linear(d_model, d_mlp)
        self.mlp_output = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, n_classes, bias=False)
        if init == "scaled_normal":
            self._scaled_normal_(vocabulary)
        elif init != "torch_default":
            raise ValueError(f"config key 'transformer_init' has unknown value {init!r}")

    @torch.no_grad()
    def _scaled_normal_(self, vocabulary: int) -> None:
        d_model = self.embed.embedding_dim
        for name, parameter in self.named_parameters():
            if name.endswith(".bias"):
                parameter.zero_()
            else:
                scale = vocabulary if name == "unembed.weight" else d_model
                parameter.normal_(0.0, 1.0 / math.sqrt(scale))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # Only the last position's logits are read, and a single block has no later layer that
        # could use the other positions' outputs: so queries, the attention output and the MLP
        # are evaluated at the last position only (the same logits as the full causal
        # computation, about a third of the work). Causal masking is moot there: the last
        # position may attend to every position.
        # The projections are linear without bias, so W (E[token] + P[t]) = (W E)[token] + W P[t]:
        # projecting the vocabulary table once is exact and far cheaper than projecting every
        # position of every sample.
        batch, length = tokens.shape
        head_size = self.embed.embedding_dim // self.n_heads
        positions = self.position[:length]  # (T, C)

        def projected(layer, index, position):  # gathered rows of the projected table
            return layer(self.embed.weight)[index] + layer(position)

        last = self.embed(tokens[:, -1]) + positions[-1]  # (B, C): the residual read out
        query = projected(self.query, tokens[:, -1], positions[-1]).view(batch, self.n_heads, 1, head_size)
        key = projected(self.key, tokens, positions).view(batch, length, self.n_heads, head_size).transpose(1, 2)
        value = projected(self.value, tokens, positions).view(batch, length, self.n_heads, head_size).transpose(1, 2)
        scores = query @ key.transpose(-1, -2) / math.sqrt(head_size)  # (B, heads, 1, T)
        attended = (scores.softmax(dim=-1) @ value).reshape(batch, -1)  # (B, C)
        last = last + self.attention_output(attended)
        last = last + self.mlp_output(functional.relu(self.mlp_input(last)))
        return self.unembed(last)  # (B, n_classes)


class _BasicBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(fan_out, track_running_stats=False)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(fan_out, track_running_stats=False)
        self.shortcut_channels = fan_out - fan_in
        self.stride = stride

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = functional.relu(self.norm1(self.conv1(inputs)))
        values = self.norm2(self.conv2(values))
        shortcut = inputs
        if self.stride != 1 or self.shortcut_channels:
            # He et al.'s option A: subsample and zero-pad channels (no extra parameters).
            shortcut = inputs[:, :, :: self.stride, :: self.stride]
            pad = self.shortcut_channels // 2
            shortcut = functional.pad(shortcut, (0, 0, 0, 0, pad, self.shortcut_channels - pad))
        return functional.relu(values + shortcut)


class ResNet20(nn.Module):
    """ResNet-20 for CIFAR-10 (He et al. 2016: 3 stages x 3 basic blocks, 16/32/64 channels).

    Batch norm keeps no running statistics (it always normalises with the batch's own), so the
    model is a pure function of its parameters and vmap can train replicas together; test
    metrics therefore use test-batch statistics. Our choice: the paper gives no details.
    """

    observable_aliases = {"output": ("output.weight",)}

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        self.stem = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(16, track_running_stats=False)
        blocks, channels = [], 16
        for stage_channels, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(3):
                blocks.append(_BasicBlock(channels, stage_channels, stride if index == 0 else 1))
                channels = stage_channels
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.Linear(64, n_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = functional.relu(self.stem_norm(self.stem(inputs)))  # (B, 16, H, W)
        values = self.blocks(values)  # (B, 64, H/4, W/4)
        return self.output(values.mean(dim=(2, 3)))


def build_model(config: ModelConfig, input_shape: tuple[int, ...], n_classes: int,
                vocabulary: int | None = None) -> nn.Module:
    """The model named by ``config.model`` with every parameter scaled by ``init_scale``.

    Uses torch's global generator: call it inside ``torch.random.fork_rng`` after seeding
    (study.replicas does) so the initialisation depends only on the trial seed.
    """
    if config.model == "fcn":
        model = FullyConnected(math.prod(input_shape), n_classes, width=config.width,
                               depth=config.depth, activation=config.activation, bias=config.bias)
    elif config.model == "lenet5":
        model = LeNet5(input_shape, n_classes)
    elif config.model == "transformer":
        model = OneLayerTransformer(vocabulary or n_classes + 1, n_classes, d_model=config.d_model,
                                    n_heads=config.n_heads, d_mlp=config.d_mlp,
                                    n_positions=input_shape[0], init=config.transformer_init)
    elif config.model == "resnet20":
        model = ResNet20(input_shape, n_classes)
    else:
        raise ValueError(f"config key 'model' has unknown value {config.model!r}")
    if config.init_scale != 1.0:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(config.init_scale)
    return model
