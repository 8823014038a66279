"""Sequential price mechanisms: the batched decision process, its gymnasium wrapper and exact
values.

:class:`SPMBatchedEnv` adapts :class:`bilevel.models.spm.SPMProcess` to the batched RL protocol
of :mod:`bilevel.solvers.rl`; :class:`SPMGymEnv` runs one episode at a time for other RL
libraries. The exact evaluators enumerate value profiles: a given mechanism's value
(:func:`evaluate_mechanism`), the expected optimum, random serial dictatorship, and the best
serial, personalised and anonymous posted-price mechanisms by dynamic programming.
"""

from bilevel.solvers.spm._dp import (
    SPMValue,
    best_asp_value,
    best_psp_value,
    best_spm_value,
    exchangeable_static_value,
)
from bilevel.solvers.spm._env import REWARDS, SPMBatchedEnv, resolve_price_grid
from bilevel.solvers.spm._exact import (
    SPMPolicy,
    evaluate_mechanism,
    expected_optimum,
    rsd_value,
    spm_reference_values,
    static_mechanism,
)
from bilevel.solvers.spm._gym import SPMGymEnv

__all__ = [
    "REWARDS",
    "SPMBatchedEnv",
    "SPMGymEnv",
    "SPMPolicy",
    "SPMValue",
    "best_asp_value",
    "best_psp_value",
    "best_spm_value",
    "evaluate_mechanism",
    "exchangeable_static_value",
    "expected_optimum",
    "resolve_price_grid",
    "rsd_value",
    "spm_reference_values",
    "static_mechanism",
]
