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
    # of one setup. Measured by tests/benchmarks/calibrate_verdicts.py on systems with known
    # answers: 1.5 is the largest margin tried with no false "equivalent" at any of 6, 10, 25
    # and 50 seeds (2.0 called a near spectral family equivalent at 50 seeds), and it makes no
    # false "distinct" from 25 seeds on; at 6-10 seeds it called 27% of the conjugate pairs
    # seen through strongly nonlinear maps distinct (their seed-to-seed spread is
    # heavy-tailed, and a few seeds underestimate it). 25 seeds, the paper's, are the advice.
    margin: float = 1.5
    # Two-sided coverage of the bootstrap interval; 0.90 makes the interval-inclusion rule
    # the two one-sided tests at 5% each.
    confidence: float = 0.90
    # SciPy's bootstrap interval. BCa corrects the bias and skew of a ratio's bootstrap
    # distribution; at the default margin the calibration gave it the percentile error rates.
    interval_method: str = "BCa"
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
