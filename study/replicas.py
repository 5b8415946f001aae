"""M perturbed copies of one initialisation, trained on the same batches (the paper's replicas).

Replica 0 is the seed's base initialisation itself; every parameter of replica r >= 1 is
``base * (1 + epsilon * U(-1, 1))`` with its own uniform draw (Redman et al. 2024, section 4;
replica 0 unperturbed as in the authors' scripts). Two interchangeable implementations:

* :class:`VectorizedReplicas` (the default): one set of stacked parameters ``(M, ...)`` and
  one optimizer. Fully connected nets run as batched matrix products
  (:func:`study.models.fully_connected_logits`), which on a CPU beats ``vmap``; other models
  run through ``torch.func.functional_call`` under ``vmap``. The loss is the sum of the replicas' mean
  losses, so each replica's gradient is exactly its own, and SGD / AdamW act elementwise, so
  each replica follows the trajectory it would follow alone.
* :class:`SequentialReplicas`: M ordinary modules with M optimizers, one after another. It is
  the reference the tests and the benchmark compare with.

Both expose parameters as stacks ``(n_replicas, ...)``; snapshots are ``(n_replicas,
n_features)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional

from study.config import ModelConfig, OptimizerConfig
from study.models import FullyConnected, build_model, fully_connected_logits


def initial_parameters(model: nn.Module, n_replicas: int, replica_noise: float,
                       generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Stacks ``(n_replicas, *shape)``: replica 0 the model's parameters exactly, replicas
    1 .. M-1 each weight times ``1 + replica_noise * U(-1, 1)``, in the model's dtype.

    ``generator`` is a CPU generator, so the draws are the same with or without a GPU. The
    uniforms are drawn in float32 whatever the dtype, so that a seed's replicas start from the
    same weights (up to float32 rounding) in float32 and float64 trials.
    """
    stacks = {}
    for name, parameter in model.named_parameters():
        base = parameter.detach().cpu()
        uniform = torch.rand((n_replicas - 1,) + tuple(base.shape), generator=generator) * 2 - 1
        perturbed = base.unsqueeze(0) * (1 + replica_noise * uniform.to(base.dtype))
        stacks[name] = torch.cat([base.unsqueeze(0).clone(), perturbed])
    return stacks


def make_model(config: ModelConfig, input_shape, n_classes, vocabulary, seed: int) -> nn.Module:
    """The base model, initialised from ``seed`` alone (torch's global RNG is restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config, input_shape, n_classes, vocabulary)


def make_optimizer(parameters, config: OptimizerConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.learning_rate, betas=(config.beta1, config.beta2),
                             weight_decay=config.weight_decay)


def replica_norms(stacks: list[torch.Tensor]) -> torch.Tensor:
    """Global parameter norm of each replica, ``(n_replicas,)``."""
    return torch.sqrt(sum(stack.flatten(1).pow(2).sum(dim=1) for stack in stacks))


def rescale_to_norms(stacks: list[torch.Tensor], target_norms: torch.Tensor) -> None:
    """Scale every replica's parameters in place so its global norm equals its target."""
    with torch.no_grad():
        factors = target_norms / replica_norms(stacks)  # (M,)
        for stack in stacks:
            stack.mul_(factors.view(-1, *([1] * (stack.dim() - 1))))


def per_replica_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (log-softmax + NLL) of each replica: logits ``(M, B, C)`` -> ``(M,)``."""
    n_replicas, batch, n_classes = logits.shape
    losses = functional.cross_entropy(logits.reshape(-1, n_classes), labels.repeat(n_replicas),
                                      reduction="none")
    return losses.view(n_replicas, batch).mean(dim=1)


def _cpu_copy(value):
    """A detached CPU deep copy of a (nested) state, safe to pickle while training goes on."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: _cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(item) for item in value)
    return copy.deepcopy(value)


class VectorizedReplicas:
    """All replicas as one stacked model: parameters ``(n_replicas, ...)``, one optimizer."""

    def __init__(self, model: nn.Module, stacks: dict[str, torch.Tensor],
                 optimizer_config: OptimizerConfig, device: torch.device):
        self.model = model.to(device)
        self.n_replicas = next(iter(stacks.values())).shape[0]
        self.parameters = {name: stack.detach().to(device).clone().requires_grad_(True)
                           for name, stack in stacks.items()}
        self.optimizer = make_optimizer(list(self.parameters.values()), optimizer_config)
        self._forward = self._batched_fcn if isinstance(model, FullyConnected) else self._vmapped

    def _vmapped(self, inputs: torch.Tensor) -> torch.Tensor:
        def single(parameters, batch):
            return torch.func.functional_call(self.model, parameters, (batch,))

        return torch.func.vmap(single, in_dims=(0, None))(self.parameters, inputs)  # (M, B, C)

    def _batched_fcn(self, inputs: torch.Tensor) -> torch.Tensor:
        return fully_connected_logits(self.parameters, inputs, depth=len(self.model.hidden),
                                      activation=self.model.activation_name)  # (M, B, C)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._forward(inputs)

    def train_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every replica on the same batch; returns losses ``(M,)``."""
        losses = per_replica_loss(self._forward(inputs), labels)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        return {name: stack.detach() for name, stack in self.parameters.items()}

    def state_dict(self) -> dict:
        return {"parameters": _cpu_copy(self.stacked_parameters()),
                "optimizer": _cpu_copy(self.optimizer.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for name, stack in self.parameters.items():
                stack.copy_(state["parameters"][name])
        self.optimizer.load_state_dict(state["optimizer"])


class SequentialReplicas:
    """The reference: M ordinary modules with M optimizers, trained one after another."""

    def __init__(self, model: nn.Module, stacks: dict[str, torch.Tensor],
                 optimizer_config: OptimizerConfig, device: torch.device):
        self.n_replicas = next(iter(stacks.values())).shape[0]
        self.modules = []
        for replica in range(self.n_replicas):
            module = copy.deepcopy(model)
            with torch.no_grad():
                for name, parameter in module.named_parameters():
                    parameter.copy_(stacks[name][replica])
            self.modules.append(module.to(device))
        self.optimizers = [make_optimizer(module.parameters(), optimizer_config) for module in self.modules]

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([module(inputs) for module in self.modules])  # (M, B, C)

    def train_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        losses = []
        for module, optimizer in zip(self.modules, self.optimizers):
            loss = functional.cross_entropy(module(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses)

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        names = [name for name, _ in self.modules[0].named_parameters()]
        return {name: torch.stack([module.get_parameter(name).detach() for module in self.modules])
                for name in names}

    def state_dict(self) -> dict:
        return {"modules": [_cpu_copy(module.state_dict()) for module in self.modules],
                "optimizers": [_cpu_copy(optimizer.state_dict()) for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for module, optimizer, module_state, optimizer_state in zip(
            self.modules, self.optimizers, state["modules"], state["optimizers"]
        ):
            module.load_state_dict(module_state)
            optimizer.load_state_dict(optimizer_state)

    def parameter_stacks_for_norm(self) -> list[list[torch.Tensor]]:
        return [list(module.parameters()) for module in self.modules]


def build_replicas(mode: str, model: nn.Module, stacks: dict[str, torch.Tensor],
                   optimizer_config: OptimizerConfig, device: torch.device):
    """``VectorizedReplicas`` or ``SequentialReplicas`` (config key ``replica_mode``)."""
    replica_class = VectorizedReplicas if mode == "vectorized" else SequentialReplicas
    return replica_class(model, stacks, optimizer_config, device)


def constrain_norms(replicas, target_norms: torch.Tensor) -> None:
    """Rescale each replica's global weight norm to its target (the grokking control)."""
    if isinstance(replicas, VectorizedReplicas):
        rescale_to_norms(list(replicas.parameters.values()), target_norms)
        return
    for replica, parameters in enumerate(replicas.parameter_stacks_for_norm()):
        with torch.no_grad():
            norm = torch.sqrt(sum(parameter.pow(2).sum() for parameter in parameters))
            for parameter in parameters:
                parameter.mul_(target_norms[replica] / norm)


@torch.no_grad()
def evaluate(replicas, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000):
    """Mean loss and accuracy of each replica on ``inputs``: two ``(M,)`` tensors."""
    total_loss = total_correct = 0
    for start in range(0, len(labels), batch_size):
        batch_inputs, batch_labels = inputs[start : start + batch_size], labels[start : start + batch_size]
        logits = replicas.logits(batch_inputs)  # (M, B, C)
        total_loss = total_loss + per_replica_loss(logits, batch_labels) * len(batch_labels)
        total_correct = total_correct + (logits.argmax(dim=-1) == batch_labels).sum(dim=1)
    return total_loss / len(labels), total_correct.double() / len(labels)
