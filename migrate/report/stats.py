"""Paired significance and confidence intervals for per-query metric values (scipy).

Both indexes answer the *same* queries, so tests are paired:

* two-sided paired t-test (``scipy.stats.ttest_rel``), the usual IR default;
* two-sided paired randomization (sign-flip permutation) test
  (``scipy.stats.permutation_test``, ``permutation_type="samples"``), which assumes
  nothing about the distribution (Smucker, Allan & Carterette 2007);
* 95 % bootstrap confidence intervals (``scipy.stats.bootstrap``, BCa) of each side's
  mean and of the mean difference (new - old), with a fixed seed so reports are stable;
* win/tie/loss counts (a tie is an absolute difference below ``tie_eps``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

SEED = 20240918
N_RESAMPLES = 10_000


@dataclass
class PairedStats:
    """Summary of new-vs-old on one metric over the same queries."""

    n: int
    old_mean: float
    new_mean: float
    delta: float
    old_ci: tuple[float, float]
    new_ci: tuple[float, float]
    delta_ci: tuple[float, float]
    p_ttest: float
    p_randomization: float
    wins: int
    ties: int
    losses: int

    def as_dict(self) -> dict:
        return asdict(self)


def _ci(x: np.ndarray, level: float) -> tuple[float, float]:
    if x.size < 2 or np.ptp(x) == 0:
        m = float(x.mean()) if x.size else 0.0
        return (m, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=N_RESAMPLES // 2,
                              method="BCa", random_state=np.random.default_rng(SEED))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa can fail on very skewed data
        lo, hi = (float(v) for v in np.percentile(
            np.random.default_rng(SEED).choice(x, (N_RESAMPLES // 2, x.size)).mean(axis=1),
            [50 * (1 - level), 50 * (1 + level)]))
    return (lo, hi)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def paired(old: np.ndarray, new: np.ndarray, *, level: float = 0.95, tie_eps: float = 1e-9) -> PairedStats:
    """Paired comparison of per-query values (same query order in both arrays)."""
    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    d = new - old
    n = int(d.size)
    if n >= 2 and np.ptp(d) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_t = float(stats.ttest_rel(new, old).pvalue)
            # one sample of differences + "samples" = flip each sign at random (the paired randomization test)
            p_r = float(stats.permutation_test((d,), _mean, permutation_type="samples",
                                               n_resamples=N_RESAMPLES, alternative="two-sided", vectorized=True,
                                               random_state=np.random.default_rng(SEED)).pvalue)
    else:
        # All differences equal: no evidence of a change unless they are all the same non-zero shift.
        p_t = p_r = 1.0 if n < 2 or abs(float(d.mean() if n else 0.0)) <= tie_eps else 0.0
    return PairedStats(
        n=n,
        old_mean=float(old.mean()) if n else 0.0,
        new_mean=float(new.mean()) if n else 0.0,
        delta=float(d.mean()) if n else 0.0,
        old_ci=_ci(old, level),
        new_ci=_ci(new, level),
        delta_ci=_ci(d, level),
        p_ttest=p_t,
        p_randomization=p_r,
        wins=int((d > tie_eps).sum()),
        ties=int((np.abs(d) <= tie_eps).sum()),
        losses=int((d < -tie_eps).sum()),
    )
