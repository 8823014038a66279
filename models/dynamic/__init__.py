"""Dynamic mechanisms with evolving types: the bandit auction as data and a batched process.

The bandit auction (the paper's Appendix D.2 and Table 2; ``docs/references.md``): buyers
report their current value vectors every period, the mechanism allocates goods and charges
payments, and a consumed good moves its value by an experience-dependent kernel. Settings are
:class:`BanditAuctionSetting` records built by name (:func:`make_bandit_setting`: ``"discrete"``,
``"continuous"``); :class:`BanditAuctionProcess` runs ``E`` episodes at once on torch tensors
with explicit generators (row ``r``'s draws depend on the seed and ``r`` only). The deviator
environment (one learning buyer against a frozen mechanism) is
``bilevel.solvers.dynamic.DeviatorEnv``.

This subpackage imports torch; ``import bilevel.models`` does not import it.

Examples
--------
>>> import torch
>>> from bilevel.models.dynamic import BanditAuctionProcess, make_bandit_setting, posted_price
>>> setting = make_bandit_setting("discrete", horizon=3)
>>> proc = BanditAuctionProcess(setting)
>>> g = torch.Generator().manual_seed(0)
>>> proc.reset(4, g)
>>> mechanism = posted_price(setting, 2.0)
>>> while not proc.finished:
...     reports = proc.values.clone()                       # truthful
...     x, p = mechanism(proc.history_with(reports), proc.experience)
...     out = proc.step(reports, x, p, g)
>>> proc.total_utility.shape, proc.total_revenue.shape
(torch.Size([4, 1]), torch.Size([4]))
"""

from bilevel.models.dynamic._check import check_bandit_setting
from bilevel.models.dynamic._kernels import (
    continuous_sigma,
    continuous_step,
    discrete_kernel,
    logit_box,
    sigmoid_box,
)
from bilevel.models.dynamic._mechanisms import Mechanism, posted_price, second_price
from bilevel.models.dynamic._process import BanditAuctionProcess, BanditStep
from bilevel.models.dynamic._registry import (
    BanditSettingSpec,
    list_bandit_settings,
    make_bandit_setting,
    register_bandit_setting,
)
from bilevel.models.dynamic._registry import continuous as continuous_setting
from bilevel.models.dynamic._registry import discrete as discrete_setting
from bilevel.models.dynamic._setting import ALLOCATIONS, TYPES, BanditAuctionSetting

register_bandit_setting(
    "discrete", discrete_setting, "values {1, 2, 3}, uniform prior (Table 2, left)"
)
register_bandit_setting(
    "continuous", continuous_setting, "values in [0, 5], N(2.5, 0.1²) prior (Table 2, right)"
)

__all__ = [
    "ALLOCATIONS",
    "TYPES",
    "BanditAuctionProcess",
    "BanditAuctionSetting",
    "BanditSettingSpec",
    "BanditStep",
    "Mechanism",
    "check_bandit_setting",
    "continuous_setting",
    "continuous_sigma",
    "continuous_step",
    "discrete_kernel",
    "discrete_setting",
    "list_bandit_settings",
    "logit_box",
    "make_bandit_setting",
    "posted_price",
    "register_bandit_setting",
    "second_price",
    "sigmoid_box",
]
