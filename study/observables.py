"""Which parameters a trial records, and the optional batch-only PCA of the recorded snapshots.

Names accepted in the ``observables`` config key:

* ``"all"``: every parameter;
* an alias the model declares (``"output"`` for every model: the output-layer weight matrix,
  which the paper records for its fully connected nets; ``"mlp_out"`` for the Transformer: the
  MLP output matrix ``(d_model, d_mlp)``, the paper's Transformer observable);
* an exact parameter name (``"hidden.0.weight"``) or a layer prefix (``"hidden.0"`` selects
  its weight and bias).

A snapshot is the selected parameters of every replica, flattened and concatenated in the
model's parameter order: ``(n_replicas, n_features)``.

PCA (``pca_components``) is a batch-only step: it needs every snapshot of a window before it
can project any of them, so a trial with PCA buffers the window's raw snapshots, fits one PCA
on all replicas' snapshots of that window together (the paper reduces the Transformer's MLP
output matrix to 10 dimensions; the authors' script fits one PCA per run on all its replicas'
snapshots, as here), and runs the batch DMD on the projected trajectories. The components are
those of the centred snapshots (scikit-learn's PCA); the projection is ``X @ components.T``
of the raw snapshots unless ``pca_center`` (the authors' and the paper's "no centering").
Without PCA the streaming estimator never holds raw trajectories in memory.
"""

from __future__ import annotations

import numpy as np
import torch


def resolve_observables(requested: tuple[str, ...], parameter_names: list[str],
                        aliases: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Parameter names selected by ``requested``, in the model's parameter order."""
    selected: set[str] = set()
    for name in requested:
        if name == "all":
            selected.update(parameter_names)
        elif name in aliases:
            selected.update(aliases[name])
        elif name in parameter_names:
            selected.add(name)
        else:
            matches = [item for item in parameter_names if item.startswith(name + ".")]
            if not matches:
                raise ValueError(
                    f"config key 'observables' names {name!r}, which is neither 'all', an alias "
                    f"({', '.join(sorted(aliases))}) nor a parameter or layer of the model "
                    f"({', '.join(parameter_names)})"
                )
            selected.update(matches)
    return tuple(name for name in parameter_names if name in selected)


def snapshot(stacks: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """The selected parameters of every replica as one ``(n_replicas, n_features)`` tensor."""
    n_replicas = next(iter(stacks.values())).shape[0]
    return torch.cat([stacks[name].reshape(n_replicas, -1) for name in names], dim=1)


def pca_project(trajectories: np.ndarray, n_components: int, *, center: bool = False) -> np.ndarray:
    """Project replica trajectories on their top principal components.

    ``trajectories``: ``(n_replicas, n_steps, n_features)``; one PCA is fitted on all
    ``N = n_replicas * n_steps`` snapshots together (its components ``V`` ``(k, F)`` are those
    of the snapshots centred on their mean, as scikit-learn's PCA), and the projections are
    returned as ``(n_replicas, n_steps, n_components)``: ``X @ V.T`` of the raw snapshots
    (``center=False``, the authors' script), or the usual scores ``(X - mean) @ V.T``
    (``center=True``). The two differ by the constant ``mean @ V.T``, which DMD without
    centering sees as a fixed point. Computed through the ``(N, N)`` Gram matrix, since the
    snapshots are far fewer than the features. Component signs are arbitrary; DMD eigenvalues
    do not depend on them.
    """
    n_replicas, n_steps, n_features = trajectories.shape
    data = trajectories.reshape(-1, n_features).astype(np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    gram = centred @ centred.T  # (N, N)
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:n_components]
    singular = np.sqrt(np.clip(values[order], 0.0, None))  # (k,)
    scores = vectors[:, order] * singular  # (N, k) = centred @ V.T, V = U.T centred / s
    if not center:
        scores = scores + (mean @ centred.T) @ vectors[:, order] / np.where(singular > 0, singular, 1.0)
    return scores.reshape(n_replicas, n_steps, len(order))
