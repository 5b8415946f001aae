"""The settings of the verdicts, with their defaults and checks written once.

Every entry point (the Python functions, ``python -m analysis``, the report) builds an
:class:`AnalysisOptions`; a value out of range fails here, before any work, naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from analysis.distances import DEFAULT_METRIC, METRICS

DECISION_RULE_NAMES = ("interval-inclusion",)
INTERVAL_METHODS = ("BCa", "percentile")  # scipy.stats.bootstrap methods that suit a ratio  # analysis.verdicts.DECISION_RULES holds them


@dataclass(frozen=True)
class AnalysisOptions:
    """How pairs of conditions are judged equivalent, distinct or undetermined."""

    # The equivalence margin, in seed-to-seed spreads: two setups are equivalent when their
    # centres are provably closer than `margin` times the typical distance between two seeds
    # of one setup. 1.5 is where the calibration (tests/benchmarks/calibrate_verdicts.py)
    # put no false "distinct" on conjugate systems seen through invertible maps and no false
    # "equivalent" on near spectral families, from 6 to 50 seeds.
    margin: float = 1.5
    # Two-sided coverage of the bootstrap interval; 0.90 makes the interval-inclusion rule
    # the two one-sided tests at 5% each.
    confidence: float = 0.90
    interval_method: str = "BCa"  # SciPy's bootstrap interval; see the calibration for why
    n_resamples: int = 2000  # bootstrap draws of seeds: Monte-Carlo error of a 5% quantile ~0.5%
    n_permutations: int = 9999  # relabelings of the identical-distribution test; min p 1e-4
    random_state: int = 0  # seeds the bootstrap and the relabelings: reruns give equal verdicts
    metric: str = DEFAULT_METRIC  # the distance of the tables, figures and permutation evidence
    rule: str = "interval-inclusion"  # how an interval and a margin make a verdict

    def __post_init__(self):
        if not (isinstance(self.margin, (int, float)) and 0 < self.margin < float("inf")):
            raise ValueError(f"margin must be a positive number of seed-to-seed spreads; "
                             f"got margin={self.margin!r}")
        if not (isinstance(self.confidence, (int, float)) and 0.5 <= self.confidence < 1):
            raise ValueError(f"confidence must lie in [0.5, 1); got confidence={self.confidence!r}")
        for name in ("n_resamples", "n_permutations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 99:
                raise ValueError(f"{name} must be an int >= 99; got {name}={value!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}; got metric={self.metric!r}")
        if self.interval_method not in INTERVAL_METHODS:
            raise ValueError(f"interval_method must be one of {list(INTERVAL_METHODS)}; "
                             f"got interval_method={self.interval_method!r}")
        if self.rule not in DECISION_RULE_NAMES:
            raise ValueError(f"rule must be one of {list(DECISION_RULE_NAMES)}; got rule={self.rule!r}")


def option_help() -> dict[str, str]:
    """One line per option for command-line help, with its default."""
    defaults = {field.name: field.default for field in fields(AnalysisOptions)}
    return {
        "margin": f"equivalence margin in seed-to-seed spreads ({defaults['margin']})",
        "confidence": f"coverage of the bootstrap interval ({defaults['confidence']})",
        "interval_method": f"bootstrap interval, one of {list(INTERVAL_METHODS)} ({defaults['interval_method']})",
        "n_resamples": f"bootstrap draws of seeds ({defaults['n_resamples']})",
        "n_permutations": f"relabelings of the identical-distribution test ({defaults['n_permutations']})",
        "random_state": f"seed of the bootstrap and the relabelings ({defaults['random_state']})",
        "metric": f"distance of the tables and figures, one of {sorted(METRICS)} ({defaults['metric']})",
        "rule": f"decision rule, one of {list(DECISION_RULE_NAMES)} ({defaults['rule']})",
    }
