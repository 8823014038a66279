"""Dynamic mechanisms with evolving types: the deviator environment and exact values.

:class:`DeviatorEnv` adapts :class:`bilevel.models.dynamic.BanditAuctionProcess` to the batched
RL protocol of :mod:`bilevel.solvers.rl` (one learning buyer against a frozen mechanism, the
others truthful); :class:`DeviatorGymEnv` runs one episode at a time behind gymnasium. The
exact dynamic programming of tabular mechanisms is in ``_exact.py``, the bridges between torch
mechanisms and exact tables in ``_tables.py``, and the truthful-init PPO deviators (a lower
bound on exploitability) in ``_deviators.py``.
"""

from bilevel.solvers.dynamic._deviators import (
    DeviationGain,
    TruthfulPrior,
    deviation_gain,
    deviator_policy,
    train_deviator,
)
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
from bilevel.solvers.dynamic._minmax import (
    IR_NOTIONS,
    MinMaxConfig,
    MinMaxStats,
    MinMaxTrainer,
    smooth_abs,
)
from bilevel.solvers.dynamic._network import (
    TYPE_STREAMS,
    MechanismNet,
    load_mechanism,
    save_mechanism,
)
from bilevel.solvers.dynamic._optimal import ironed_virtual_values, one_period_optimum
from bilevel.solvers.dynamic._tables import (
    MAX_TABULATED_ROWS,
    as_torch,
    exact_arrays,
    markov_form,
    tabulate,
)

# One sorted list: the deviator environment's names and _exact.py's.
__all__ = [
    "CRITICS",
    "IR_NOTIONS",
    "MAX_TABULATED_ROWS",
    "TYPE_STREAMS",
    "BestResponse",
    "DeviationGain",
    "DeviatorEnv",
    "DeviatorGymEnv",
    "HistoryMechanism",
    "MechanismNet",
    "MinMaxConfig",
    "MinMaxStats",
    "MinMaxTrainer",
    "PostedPriceChoice",
    "TabularMechanism",
    "TruthfulPrior",
    "TruthfulValue",
    "as_torch",
    "best_posted_price",
    "best_response_value",
    "deviation_gain",
    "deviator_obs_dim",
    "deviator_policy",
    "discrete_kernel",
    "dynamic_pivot",
    "exact_arrays",
    "experience_kernels",
    "ironed_virtual_values",
    "load_mechanism",
    "markov_form",
    "myopic_second_price",
    "one_period_optimum",
    "posted_price",
    "save_mechanism",
    "smooth_abs",
    "tabulate",
    "train_deviator",
    "truthful_value",
]
