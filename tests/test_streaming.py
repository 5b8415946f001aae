"""StreamingKoopman: streaming equals batch, state round trips, bad snapshots, sketching."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from study.koopman import KoopmanInputError, NonFiniteSnapshotError, koopman_eigenvalues
from study.koopman.sketch import CountSketch
from study.koopman.streaming import BLOCK_STEPS, StreamingKoopman


def drifting_replicas(n_replicas=3, n_steps=300, n_features=6, seed=0):
    """(n_replicas, n_steps, n_features): a damped linear system plus noise, per replica."""
    rng = np.random.default_rng(seed)
    operator = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0] * 0.97
    states = np.empty((n_replicas, n_steps, n_features))
    states[:, 0] = rng.normal(size=(n_replicas, n_features))
    for step in range(1, n_steps):
        states[:, step] = states[:, step - 1] @ operator.T + 0.01 * rng.normal(
            size=(n_replicas, n_features))
    return states


def test_streaming_equals_batch_for_every_window():
    data = drifting_replicas()  # 300 steps crosses two block boundaries (BLOCK_STEPS = 128)
    assert data.shape[1] > 2 * BLOCK_STEPS
    estimator = StreamingKoopman(n_replicas=3, delays=2, rank=5)
    for step in range(data.shape[1]):
        snapshot = data[:, step]
        # alternate numpy and torch feeds: both paths must store identical float64 rows
        estimator.partial_fit(torch.from_numpy(snapshot) if step % 2 else snapshot)
    assert estimator.n_steps_seen_ == 300
    for start, stop in [(0, None), (0, 100), (100, 200), (120, 140), (250, 300), (37, 291)]:
        expected = koopman_eigenvalues(data[:, start:stop], delays=2, rank=5)
        np.testing.assert_allclose(estimator.eigenvalues(start, stop), expected, atol=1e-12)


def test_single_replica_accepts_one_dimensional_snapshots():
    data = drifting_replicas(n_replicas=1)[0]
    estimator = StreamingKoopman()
    for row in data:
        estimator.partial_fit(row)
    np.testing.assert_allclose(estimator.eigenvalues(), koopman_eigenvalues(data), atol=1e-12)


def test_state_dict_round_trip_continues_like_an_uninterrupted_stream():
    data = drifting_replicas(n_features=40)
    uninterrupted = StreamingKoopman(n_replicas=3, delays=1, rank=6, sketch_dimension=16,
                                     random_state=7)
    interrupted = StreamingKoopman(n_replicas=3, delays=1, rank=6, sketch_dimension=16,
                                   random_state=7)
    for step in range(data.shape[1]):
        uninterrupted.partial_fit(data[:, step])
        if step < 140:
            interrupted.partial_fit(data[:, step])
    state = pickle.loads(pickle.dumps(interrupted.state_dict()))
    allowed = (np.ndarray, int, float, str)
    assert all(isinstance(value, allowed) for value in state.values()), state
    resumed = StreamingKoopman.from_state_dict(state)
    for step in range(140, data.shape[1]):
        resumed.partial_fit(data[:, step])
    assert resumed.n_steps_seen_ == uninterrupted.n_steps_seen_
    for start, stop in [(0, None), (100, 200)]:
        np.testing.assert_array_equal(resumed.eigenvalues(start, stop),
                                      uninterrupted.eigenvalues(start, stop))


def test_sketched_stream_stores_the_count_sketch_of_each_snapshot():
    data = drifting_replicas(n_features=40)
    estimator = StreamingKoopman(n_replicas=3, sketch_dimension=10, random_state=3)
    for step in range(20):
        estimator.partial_fit(torch.from_numpy(data[:, step]).to(torch.float32))
    sketch = CountSketch(40, 10, random_state=3).to_dense()
    expected = data[:, :20].astype(np.float32).astype(np.float64) @ sketch.T
    np.testing.assert_allclose(estimator.window(), expected, atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_snapshot_names_the_step_and_is_not_recorded(bad):
    estimator = StreamingKoopman(n_replicas=2)
    for _ in range(5):
        estimator.partial_fit(np.ones((2, 3)))
    snapshot = np.ones((2, 3))
    snapshot[1, 2] = bad
    with pytest.raises(NonFiniteSnapshotError, match=r"step 5 \(replicas \[1\]\)"):
        estimator.partial_fit(torch.from_numpy(snapshot))
    assert estimator.n_steps_seen_ == 5


def test_wrong_snapshot_shape_and_bad_windows_raise():
    estimator = StreamingKoopman(n_replicas=2)
    with pytest.raises(ValueError, match=r"shape \(2, 'n_features'\)"):
        estimator.partial_fit(np.ones(3))
    estimator.partial_fit(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*got \(2, 4\)"):
        estimator.partial_fit(np.ones((2, 4)))
    with pytest.raises(KoopmanInputError, match=r"window \[0, 5\) is not inside the 1 steps"):
        estimator.fit_window(0, 5)
    with pytest.raises(ValueError, match="sketch_dimension must be None or an int >= 1"):
        StreamingKoopman(sketch_dimension=0)
    with pytest.raises(ValueError, match="solver must be one of"):
        StreamingKoopman(solver="lapack")


def test_float32_snapshots_are_stored_exactly_and_widened_by_a_float64_feed():
    data = drifting_replicas()
    narrow = data.astype(np.float32)
    estimator = StreamingKoopman(n_replicas=3, delays=1, rank=4)
    for step in range(200):
        estimator.partial_fit(torch.from_numpy(narrow[:, step]))
    assert estimator.state_dict()["snapshots"].dtype == np.float32  # half the memory
    np.testing.assert_array_equal(estimator.window(), narrow[:, :200].astype(np.float64))
    np.testing.assert_array_equal(
        estimator.eigenvalues(), koopman_eigenvalues(narrow[:, :200].astype(np.float64),
                                                     delays=1, rank=4))
    for step in range(200, 300):  # float64 feeds: storage widens, nothing is rounded
        estimator.partial_fit(data[:, step])
    assert estimator.state_dict()["snapshots"].dtype == np.float64
    expected = np.concatenate([narrow[:, :200].astype(np.float64), data[:, 200:]], axis=1)
    np.testing.assert_array_equal(estimator.window(), expected)
    restored = StreamingKoopman.from_state_dict(estimator.state_dict())
    np.testing.assert_array_equal(restored.window(), expected)


def test_huge_finite_float32_values_are_not_mistaken_for_overflow():
    estimator = StreamingKoopman(n_replicas=1)
    snapshot = np.full((1, 4000), 1e35, dtype=np.float32)  # float32 sum overflows, values do not
    estimator.partial_fit(snapshot)
    assert estimator.n_steps_seen_ == 1


def test_bfloat16_tensors_are_stored_exactly():
    values = torch.randn(2, 6).to(torch.bfloat16)
    estimator = StreamingKoopman(n_replicas=2)
    estimator.partial_fit(values)
    np.testing.assert_array_equal(estimator.window()[:, 0], values.to(torch.float64).numpy())


def test_the_training_loop_example_of_the_study_readme_runs(capsys):
    # study/README.md, "In your own training loop": the example must stay true.
    readme = (Path(__file__).resolve().parents[1] / "study" / "README.md").read_text()
    section = readme.split("### In your own training loop", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    with torch.random.fork_rng():  # the example seeds torch's global generator
        exec(compile(code, "study/README.md", "exec"), namespace)
    estimator, fit = namespace["estimator"], namespace["fit"]
    assert estimator.n_steps_seen_ == 300 and fit.eigenvalues.shape == (6,)
    np.testing.assert_array_equal(  # streaming equals batch on the example's own window
        fit.eigenvalues, koopman_eigenvalues(estimator.window(100, 300), delays=4, rank=6))
