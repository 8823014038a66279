"""Sequential price mechanisms (SPM): settings as data and the batched SPM decision process.

Settings (those of Brero et al. (2021), "Experimental Results", with the distributions of
Appendix C of its extended version; all values normalised to [0, 1]) are :class:`SPMSetting`
records built by name; :class:`SPMProcess` runs ``E`` episodes of the mechanism at once on given
value profiles (sampled, or enumerated for exact evaluation) and returns plain tensors. The RL
adapter implementing ``bilevel.solvers.rl.BatchedEnv`` is ``bilevel.solvers.spm.SPMBatchedEnv``;
a gymnasium single-episode environment is :class:`SPMGymEnv` (Box action: agent scores, then
prices). Exact values (E[OPT], RSD, a given mechanism's value, best SPM/PSP/ASP) are in
``bilevel.solvers.spm._exact``, ``bilevel.solvers.spm._dp`` and ``bilevel.solvers.spm._exact``.

Settings (``make_spm_setting(name, **params)``; values normalised to [0, 1]):
``correlated`` (n, k, δ), ``revenue`` (correlated, revenue objective), ``additive_across_types``,
``colors``, ``two_worlds``, ``inventory``, ``kitchen_sink``, ``id``, ``maxmin_fairness``,
``proposition1``, ``proposition2``, ``proposition4``. Proposition 3's distribution is not given
in the paper's conference text and is not provided.

Examples
--------
>>> import torch
>>> from bilevel.models.spm import SPMProcess, make_spm_setting
>>> setting = make_spm_setting("correlated", n_agents=20, n_items=5, delta=0.0)
>>> g = torch.Generator().manual_seed(0)
>>> proc = SPMProcess(setting, objective="welfare", dtype=torch.float64)
>>> proc.reset(setting.sample(1024, g))              # one row per sampled profile
>>> while not bool(proc.done.all()):
...     mask = proc.agent_mask()                      # (E, n) remaining agents
...     agent = mask.to(torch.int64).argmax(dim=1)    # lowest-index remaining agent
...     prices = torch.full((proc.num_rows, 1), 0.5, dtype=torch.float64)
...     ended = proc.step(agent, prices)
>>> obs = proc.observation("price_allocation")       # (E, n + d + 2 n d)
>>> welfare_loss = proc.objective() - proc.optimum   # (E,) <= 0
>>> bool((welfare_loss <= 1e-12).all())
True
"""

from bilevel.models.spm._check import check_spm_setting
from bilevel.models.spm._grid import default_price_grid
from bilevel.models.spm._optimum import optimal_welfare
from bilevel.models.spm._process import HORIZONS, STATISTICS, TIE_RULES, SPMProcess, observation_dim
from bilevel.models.spm._registry import (
    SPMSettingSpec,
    list_spm_settings,
    make_spm_setting,
    register_spm_setting,
)
from bilevel.models.spm._setting import OBJECTIVES, VALUATIONS, SPMSetting
from bilevel.models.spm._settings import (
    additive_across_types,
    colors,
    correlated,
    id_setting,
    inventory,
    kitchen_sink,
    maxmin_fairness,
    proposition1,
    proposition2,
    proposition4,
    revenue,
    two_worlds,
)

register_spm_setting("correlated", correlated, "unit demand, k identical items, correlated (δ)")
register_spm_setting("colors", colors, "red/yellow/blue agents; an ASP is optimal")
register_spm_setting("two_worlds", two_worlds, "one item, high or low world; needs PSP")
register_spm_setting("inventory", inventory, "i.i.d. {1/2, 1}; needs adaptive prices")
register_spm_setting("kitchen_sink", kitchen_sink, "needs adaptive order and prices")
register_spm_setting("id", id_setting, "agents/items left is not sufficient")
register_spm_setting("additive_across_types", additive_across_types, "two types, additive")
register_spm_setting("revenue", revenue, "correlated δ = 0.5, revenue objective")
register_spm_setting("maxmin_fairness", maxmin_fairness, "max-min fairness, adaptive order")
register_spm_setting("proposition1", proposition1, "1 item, 2 agents on {1,3}")
register_spm_setting("proposition2", proposition2, "2 items, 3 agents on {1,3}")
register_spm_setting("proposition4", proposition4, "2 items, 4 independent agents")

__all__ = [
    "HORIZONS",
    "OBJECTIVES",
    "STATISTICS",
    "TIE_RULES",
    "VALUATIONS",
    "SPMProcess",
    "SPMSetting",
    "SPMSettingSpec",
    "additive_across_types",
    "check_spm_setting",
    "colors",
    "correlated",
    "default_price_grid",
    "id_setting",
    "inventory",
    "kitchen_sink",
    "list_spm_settings",
    "make_spm_setting",
    "maxmin_fairness",
    "observation_dim",
    "optimal_welfare",
    "proposition1",
    "proposition2",
    "proposition4",
    "register_spm_setting",
    "revenue",
    "two_worlds",
]
