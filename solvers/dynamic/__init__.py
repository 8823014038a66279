"""Dynamic mechanisms with evolving types: the deviator environment and exact values.

:class:`DeviatorEnv` adapts :class:`bilevel.models.dynamic.BanditAuctionProcess` to the batched
RL protocol of :mod:`bilevel.solvers.rl` (one learning buyer against a frozen mechanism, the
others truthful); :class:`DeviatorGymEnv` runs one episode at a time behind gymnasium. The
exact dynamic programming of tabular mechanisms is in ``_exact.py``.
"""

from bilevel.solvers.dynamic._env import CRITICS, DeviatorEnv, deviator_obs_dim

# ---- exact dynamic programming (solvers/dynamic/_exact.py): its exports go here -------------
from bilevel.solvers.dynamic._exact import (
    BestResponse,
    HistoryMechanism,
    PostedPriceChoice,
    TabularMechanism,
    TruthfulValue,
    best_posted_price,
    best_response_value,
    discrete_kernel,
    dynamic_pivot,
    experience_kernels,
    myopic_second_price,
    posted_price,
    truthful_value,
)

# ---- end of the exact exports ----------------------------------------------------------------
from bilevel.solvers.dynamic._gym import DeviatorGymEnv

# One sorted list: the deviator environment's names and _exact.py's.
__all__ = [
    "CRITICS",
    "BestResponse",
    "DeviatorEnv",
    "DeviatorGymEnv",
    "HistoryMechanism",
    "PostedPriceChoice",
    "TabularMechanism",
    "TruthfulValue",
    "best_posted_price",
    "best_response_value",
    "deviator_obs_dim",
    "discrete_kernel",
    "dynamic_pivot",
    "experience_kernels",
    "myopic_second_price",
    "posted_price",
    "truthful_value",
]
