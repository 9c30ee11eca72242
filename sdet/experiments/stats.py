"""Mean and 95% confidence interval of a few runs (Student's t, no SciPy needed)."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# two-sided 95% quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
         18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile_975(df: int) -> float:
    if df < 1:
        return float("nan")
    known = [d for d in _T975 if d <= df]
    return _T975[max(known)] if df <= 120 else 1.960


@dataclass
class Summary:
    mean: float
    half_width: float  # the 95% CI is mean +- half_width (nan for a single run)
    n: int

    def format(self, scale: float = 100.0) -> str:
        if self.n < 2:
            return f"{self.mean * scale:.1f}"
        return f"{self.mean * scale:.1f} ± {self.half_width * scale:.1f}"


def summarize(values: Sequence[float]) -> Summary:
    n = len(values)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0)
    mean = statistics.fmean(values)
    if n < 2:
        return Summary(mean, float("nan"), 1)
    return Summary(mean, t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n), n)
