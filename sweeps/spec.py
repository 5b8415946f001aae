"""Sweep specifications: a grid of training setups × seeds, loaded from code or YAML.

A :class:`SweepSpec` expands into :class:`TrialSetup` objects, one per (grid point, seed): that
is a *trial* in the records (``trials.parquet`` has one row per setup). Every setup's flat
config is validated through ``study.config.TrialConfig.from_flat_dict`` before anything is
launched, so a wrong key or value fails early with a message naming the key, the value and
the grid point: a person can fix it before any trial has run.

Pure Python: no Ray here, so specs can be built, listed and validated without a cluster.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The keys a sweep YAML file may hold, each the name of a SweepSpec field.
SPEC_KEYS = ("name", "description", "base", "grid", "points", "seeds", "n_seeds", "seed_overrides", "label_keys")


class SweepSpecError(ValueError):
    """A sweep specification that cannot run: the message names the key, value and setup."""


@dataclass(frozen=True)
class TrialSetup:
    """One setup of a sweep: one grid point and one seed (its replicas run inside the trial)."""

    trial_id: str  # stable across runs: resume and record files are keyed by it
    condition: str  # readable label of the varied keys without the seed, e.g. "width=40"
    seed: int
    config: Mapping[str, Any]  # flat TrialConfig keys (study/config.py)


@dataclass(frozen=True)
class SweepSpec:
    """A named grid of training setups × seeds.

    The setups are the Cartesian product of ``grid`` (key -> list of values) and ``points``
    (explicit combinations of keys that vary together, e.g. a width and its delay), each merged
    over ``base`` and repeated for every seed of ``seeds``.
    """

    name: str
    description: str = ""  # one line shown by `python -m sweeps list`
    base: Mapping[str, Any] = field(default_factory=dict)  # values shared by every setup
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # empty: one grid point
    points: Sequence[Mapping[str, Any]] = ()  # empty: no linked keys
    seeds: Sequence[int] = (0,)  # one trial per seed and grid point
    # Per-seed values, e.g. {0: {"grid_jitter": 0.0}} keeps the paper's exact grid at seed 0.
    seed_overrides: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    # Keys that form the condition label; None: every key that varies over the grid.
    label_keys: Sequence[str] | None = None

    def varied_keys(self) -> list[str]:
        """The keys that take more than one value over grid and points, in definition order."""
        keys = list(self.grid)
        for point in self.points:
            keys.extend(key for key in point if key not in keys)
        return keys


def format_value(value: Any) -> str:
    """A short, stable text form of a config value for condition labels."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def condition_label(varied: Mapping[str, Any], label_keys: Sequence[str] | None) -> str:
    """``key=value`` pairs of the varied keys (or of ``label_keys``), joined by commas."""
    keys = list(varied) if label_keys is None else [key for key in label_keys if key in varied]
    return ",".join(f"{key}={format_value(varied[key])}" for key in keys)


def trial_id_for(condition: str, seed: int) -> str:
    """A file-name-safe id that stays the same between runs of the same spec."""
    slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", condition.replace(",", "_")) or "base"
    return f"{slug}-seed{seed}"


def _grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    grid_keys = list(spec.grid)
    combinations = itertools.product(*(list(spec.grid[key]) for key in grid_keys))
    points = list(spec.points) or [{}]
    return [
        {**dict(zip(grid_keys, values)), **dict(point)}
        for values in combinations
        for point in points
    ]


def expand(spec: SweepSpec) -> list[TrialSetup]:
    """Every (grid point, seed) of ``spec`` as a :class:`TrialSetup`, grid-major order."""
    check_structure(spec)
    setups = []
    for varied in _grid_points(spec):
        condition = condition_label(varied, spec.label_keys)
        for seed in spec.seeds:
            config = {**dict(spec.base), **varied, "seed": int(seed)}
            config.update(spec.seed_overrides.get(int(seed), {}))
            setups.append(TrialSetup(trial_id_for(condition, seed), condition, int(seed), config))
    seen: dict[str, TrialSetup] = {}
    for setup in setups:
        if setup.trial_id in seen:
            raise SweepSpecError(
                f"sweep {spec.name!r}: two setups share the label {setup.condition!r}; "
                f"add the keys that tell them apart to label_keys (now {spec.label_keys})"
            )
        seen[setup.trial_id] = setup
    return setups


def check_structure(spec: SweepSpec) -> None:
    """Errors in the shape of the spec itself (before any config value is looked at)."""
    if not spec.name or not isinstance(spec.name, str):
        raise SweepSpecError(f"sweep name must be a non-empty string, got {spec.name!r}")
    for key, values in spec.grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise SweepSpecError(f"grid key {key!r} needs a non-empty list of values, got {values!r}")
    seeds = list(spec.seeds)
    if not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise SweepSpecError(f"seeds must be a non-empty list of integers, got {spec.seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SweepSpecError(f"seeds repeat a value: {seeds!r}")
    if "seed" in spec.grid or any("seed" in point for point in spec.points) or "seed" in spec.base:
        raise SweepSpecError("key 'seed' belongs in seeds, not in base, grid or points")
    for key in spec.varied_keys():
        if key in spec.base:
            raise SweepSpecError(f"key {key!r} is both fixed in base and varied in grid/points")
    for seed in spec.seed_overrides:
        if seed not in seeds:
            raise SweepSpecError(f"seed_overrides names seed {seed!r}, which is not in seeds {seeds}")


def validate(spec: SweepSpec) -> list[TrialSetup]:
    """Expand ``spec`` and check every setup's config with ``TrialConfig.from_flat_dict``.

    Raises :class:`SweepSpecError` naming the sweep, the setup and the offending key/value.
    """
    from study.config import TrialConfig  # imported here: study.config may pull in torch-free deps only

    setups = expand(spec)
    for setup in setups:
        try:
            TrialConfig.from_flat_dict(dict(setup.config))
        except ValueError as error:
            raise SweepSpecError(
                f"sweep {spec.name!r}, setup {setup.condition or 'base'} seed {setup.seed}: {error}"
            ) from error
    return setups


def with_overrides(spec: SweepSpec, overrides: Mapping[str, Any]) -> SweepSpec:
    """``spec`` with ``overrides`` fixed in base for every setup (removed where they varied)."""
    if not overrides:
        return spec
    if "seed" in overrides:
        raise SweepSpecError("override 'seed' is not allowed; seeds come from the sweep")

    def without(values: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in values.items() if key not in overrides}

    points = tuple(point for point in map(without, spec.points) if point)  # an emptied point goes
    return dataclasses.replace(
        spec,
        base={**dict(spec.base), **dict(overrides)},
        grid=without(spec.grid),
        points=points,
        seed_overrides={seed: without(values) for seed, values in spec.seed_overrides.items()},
    )


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """Plain-data form of ``spec`` (the same keys as a YAML file), for sweep.json."""
    return {
        "name": spec.name,
        "description": spec.description,
        "base": dict(spec.base),
        "grid": {key: list(values) for key, values in spec.grid.items()},
        "points": [dict(point) for point in spec.points],
        "seeds": list(spec.seeds),
        "seed_overrides": {int(seed): dict(values) for seed, values in spec.seed_overrides.items()},
        "label_keys": None if spec.label_keys is None else list(spec.label_keys),
    }


def spec_from_dict(data: Mapping[str, Any], *, source: str = "sweep") -> SweepSpec:
    """Build a spec from plain data (a parsed YAML file or sweep.json); unknown keys raise."""
    if not isinstance(data, Mapping):
        raise SweepSpecError(f"{source}: a sweep must be a mapping of keys, got {type(data).__name__}")
    unknown = [key for key in data if key not in SPEC_KEYS]
    if unknown:
        raise SweepSpecError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    for key in ("base", "grid", "seed_overrides"):
        if not isinstance(data.get(key, {}) or {}, Mapping):
            raise SweepSpecError(f"{source}: key {key!r} must be a mapping, got {data[key]!r}")
    if not isinstance(data.get("points", []) or [], list):
        raise SweepSpecError(f"{source}: key 'points' must be a list of mappings, got {data['points']!r}")
    if "seeds" in data and "n_seeds" in data:
        raise SweepSpecError(f"{source}: give either 'seeds' (a list) or 'n_seeds' (a count), not both")
    seeds = data.get("seeds", [0])
    if "n_seeds" in data:
        count = data["n_seeds"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise SweepSpecError(f"{source}: key 'n_seeds' must be a positive integer, got {count!r}")
        seeds = list(range(count))
    if not isinstance(seeds, list):
        raise SweepSpecError(f"{source}: key 'seeds' must be a list of integers, got {seeds!r}")
    label_keys = data.get("label_keys")
    spec = SweepSpec(
        name=data.get("name", Path(source).stem),
        description=data.get("description", ""),
        base=dict(data.get("base") or {}),
        grid={key: list(values) if isinstance(values, list) else values for key, values in (data.get("grid") or {}).items()},
        points=tuple(dict(point) for point in (data.get("points") or [])),
        seeds=tuple(seeds),
        seed_overrides={int(seed): dict(values) for seed, values in (data.get("seed_overrides") or {}).items()},
        label_keys=None if label_keys is None else tuple(label_keys),
    )
    check_structure(spec)
    return spec


def load_spec_file(path: str | Path) -> SweepSpec:
    """Read a sweep YAML file (keys as :data:`SPEC_KEYS`); errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SweepSpecError(f"cannot read sweep file {path}: {error}") from error
    return spec_from_dict(data, source=str(path))
