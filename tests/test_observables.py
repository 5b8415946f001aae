"""Observables: parameter selection and the batch-only PCA, against scikit-learn's PCA."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from study.observables import pca_project, resolve_observables


def drifting_trajectories(n_replicas=3, n_steps=40, n_features=200, seed=0):
    """(n_replicas, n_steps, n_features): a large common offset plus a slow random walk."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=n_features) * 5
    steps = rng.normal(size=(n_replicas, n_steps, n_features)) * 0.1
    return offset + np.cumsum(steps, axis=1)


def aligned(result, reference):
    """``result`` with each column's sign matched to ``reference`` (PCA signs are arbitrary)."""
    signs = np.sign(np.sum(result * reference, axis=0))
    return result * signs


@pytest.mark.parametrize("center", [False, True])
def test_pca_projection_equals_scikit_learn(center):
    trajectories = drifting_trajectories()
    data = trajectories.reshape(-1, trajectories.shape[-1])
    pca = PCA(n_components=5).fit(data)  # scikit-learn centres before finding the components
    # The authors' uncentred projection X @ components.T, or scikit-learn's centred scores.
    reference = pca.transform(data) if center else data @ pca.components_.T
    result = pca_project(trajectories, 5, center=center).reshape(-1, 5)
    np.testing.assert_allclose(aligned(result, reference), reference, rtol=1e-8, atol=1e-8)


def test_uncentred_projection_is_the_centred_one_plus_the_projected_mean():
    trajectories = drifting_trajectories(seed=1)
    centred, uncentred = pca_project(trajectories, 4, center=True), pca_project(trajectories, 4)
    shift = uncentred - centred  # (M, T, k): one constant row, mean @ components.T
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0], shift.shape), atol=1e-9)
    assert np.abs(shift[0, 0]).max() > 1.0  # the large offset is kept, not removed
    np.testing.assert_allclose(centred.reshape(-1, 4).mean(axis=0), 0, atol=1e-9)


def test_observables_resolve_aliases_and_prefixes_in_parameter_order():
    names = ["hidden.0.weight", "hidden.0.bias", "output.weight"]
    assert resolve_observables(("output", "hidden.0"), names, {"output": ("output.weight",)}) == tuple(names)
    with pytest.raises(ValueError, match="'observables' names 'nope'"):
        resolve_observables(("nope",), names, {})
