"""The paper's validation problem: OMD vs OGD (conjugate) vs bisection (not), on f = sum tan.

The paper's validation experiment (Redman et al., NeurIPS 2024). Minimise
``f(x) = sum_i tan(x_i)`` in d = 2 on the box ``[0.01, 1]^2`` with step ``eta = 0.01`` in
float64; T = ``n_steps`` snapshots (the start and ``n_steps - 1`` steps). Every trajectory
is ``(n_steps, 2)``; :func:`validation_trajectories` returns the 25 grid starts stacked as
``(25, n_steps, 2)`` (time on axis 1, each replica's time on axis 0), ready for
``study.koopman.koopman_eigenvalues(..., delays=4)``.

* **OMD** with the mirror map ``R(x) = -sum log x_i``: ``grad R(x) = -1/x``, so
  ``x <- (grad R)^-1(grad R(x) - eta grad f(x))`` reads ``-1/x_new = -1/x - eta sec^2(x)``,
  i.e. ``x_new = 1 / (1/x + eta sec^2(x))``. Then the Bregman projection onto the box. For a
  separable mirror map the Bregman divergence ``D_R(y, x) = sum_i phi(y_i) - phi(x_i) -
  phi'(x_i)(y_i - x_i)`` is a sum of one-dimensional strictly convex functions of ``y_i``,
  each minimised at ``y_i = x_i``; on a box the coordinates decouple, so the projection is
  coordinate-wise clipping to ``[0.01, 1]``.
* **OGD** on ``u`` (``x = exp(u)``): ``u <- u - eta sec^2(exp u) exp(u)``, then the Euclidean
  projection onto ``[log 0.01, 0]^2`` (clipping); the trajectory is recorded in ``u``.
  OMD and OGD are conjugate through ``x = exp(u)``: both discretise ``dx = -x^2 sec^2(x) dt``.
* **Bisection** (the non-conjugate control) on the sign of ``f(z) = sum_i tan(z_i)`` with
  vector brackets ``a``, ``b``: ``z = (a + b) / 2``; ``f(z) < 0`` moves ``a`` to ``z``,
  ``f(z) > 0`` moves ``b`` to ``z`` (``f(z) = 0``: both, the root is found). Recorded: the
  midpoint ``z_t``, so that the trajectory is 2-D like the other two (our choice; the paper's
  text names the method only). ``z_0 = (a_0 + b_0) / 2``.

Starts (5 x 5 meshgrids of linspace, paired by grid index): ``x_0`` over ``[0.1, 0.9]^2``,
``u_0`` over ``[-2.3, -0.1]^2``, ``a_0`` over ``[-4/3, -1/3]^2``, ``b_0`` over ``[1/7, 8/7]^2``.
``grid_jitter > 0`` moves each grid point by ``U(-1, 1) * grid_jitter * spacing`` per
coordinate (seeded by ``random_state``): seed-level replicates for calibrating distances;
``grid_jitter = 0`` is the paper's exact grid.
"""

from __future__ import annotations

import numpy as np

METHODS = ("omd", "ogd", "bisection")
GRID_POINTS_PER_AXIS = 5  # 5 x 5 = 25 starts, as in the paper
BOX = (0.01, 1.0)  # the feasible box of x (OGD: its log)
GRIDS = {  # (low, high) of each start grid, per axis
    "omd": (0.1, 0.9),
    "ogd": (-2.3, -0.1),
    "bisection_lower": (-4.0 / 3.0, -1.0 / 3.0),
    "bisection_upper": (1.0 / 7.0, 8.0 / 7.0),
}


def start_grid(name: str, unit_offsets: np.ndarray, grid_jitter: float) -> np.ndarray:
    """(25, 2) meshgrid of linspace over ``GRIDS[name]``, optionally jittered."""
    low, high = GRIDS[name]
    axis = np.linspace(low, high, GRID_POINTS_PER_AXIS)
    first, second = np.meshgrid(axis, axis)
    points = np.stack([first.ravel(), second.ravel()], axis=1)
    spacing = (high - low) / (GRID_POINTS_PER_AXIS - 1)
    return points + grid_jitter * spacing * unit_offsets


def omd_step(x: np.ndarray, step_size: float) -> np.ndarray:
    """Mirror step with R = -sum log x, then the Bregman (= clipping) projection."""
    return np.clip(1.0 / (1.0 / x + step_size / np.cos(x) ** 2), *BOX)


def ogd_step(u: np.ndarray, step_size: float) -> np.ndarray:
    """Gradient step on u for f(exp(u)), then the Euclidean projection onto log(box)."""
    x = np.exp(u)
    return np.clip(u - step_size * x / np.cos(x) ** 2, np.log(BOX[0]), np.log(BOX[1]))


def bisection_step(lower: np.ndarray, upper: np.ndarray):
    """One vector-bracket bisection step per row; returns the new brackets."""
    middle = (lower + upper) / 2
    sign = np.sum(np.tan(middle), axis=1, keepdims=True)
    return np.where(sign <= 0, middle, lower), np.where(sign >= 0, middle, upper)


def validation_trajectories(method: str, *, n_steps: int = 100, step_size: float = 0.01,
                            grid_jitter: float = 0.0, random_state: int = 0) -> np.ndarray:
    """The 25 trajectories of ``method`` in {"omd", "ogd", "bisection"}: (25, n_steps, 2).

    float64; row 0 of each trajectory is its start. ``step_size`` is unused by bisection.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an int >= 1; got {n_steps!r}")
    if not grid_jitter >= 0:
        raise ValueError(f"grid_jitter must be >= 0; got {grid_jitter!r}")
    offsets = np.random.default_rng(random_state).uniform(-1.0, 1.0, size=(2, 25, 2))
    trajectories = np.empty((GRID_POINTS_PER_AXIS**2, n_steps, 2))
    if method == "bisection":
        lower = start_grid("bisection_lower", offsets[0], grid_jitter)
        upper = start_grid("bisection_upper", offsets[1], grid_jitter)
        for step in range(n_steps):
            trajectories[:, step] = (lower + upper) / 2
            lower, upper = bisection_step(lower, upper)
        return trajectories
    state = start_grid(method, offsets[0], grid_jitter)
    update = omd_step if method == "omd" else ogd_step
    trajectories[:, 0] = state
    for step in range(1, n_steps):
        state = update(state, step_size)
        trajectories[:, step] = state
    return trajectories
