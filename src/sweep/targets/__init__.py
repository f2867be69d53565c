"""Prune to a cost instead of a ratio: search the ratio until the pruned model reaches the target.

`ratio` means something different for every method (a fraction of weights, of each group's channels,
of all channels), so methods compared at one ratio are not at one cost. A target names the cost:
`macs` or `params` (the fraction of the dense model's to keep) or `speedup` (measured). Every method is
monotone in its ratio, so a bracketing search (interpolation, falling back to bisection) finds it.
Where the method's steps jump over the target, its finest steps close the gap (`search`'s `refine`);
where even those cannot, the job lands on the nearest point at or beyond the target and says why. A
value no ratio up to `max_ratio` reaches is an error.
"""

from sweep.targets import published
from sweep.targets.cost import cost_trial, kept, method_search
from sweep.targets.search import Found, Trial, search
from sweep.targets.target import INTERVAL_TOLERANCES, Reading, Target, TargetNotReached, of_config

__all__ = [
    "INTERVAL_TOLERANCES",
    "Found",
    "Reading",
    "Target",
    "TargetNotReached",
    "Trial",
    "cost_trial",
    "kept",
    "method_search",
    "of_config",
    "published",
    "search",
]
