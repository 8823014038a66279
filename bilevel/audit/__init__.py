"""Exploitability audits: how much an agent gains by misreporting its type.

:func:`exploitability` measures the sum over agents of the best unilateral deviation gain at
truthful reporting (NashConv at truth) of a static-report mechanism on one of the library's MDP
environments: an :class:`bilevel.AMA` (VCG, Myerson's optimum, designed mechanisms) or any
:class:`DirectMechanism`. The result is an :class:`Exploitability`, exact for enumerated finite
type supports, otherwise a documented lower bound with its resolution. Given a
:class:`bilevel.models.dynamic.BanditAuctionSetting` instead of an environment, it audits a
dynamic mechanism (reports every period, evolving types) by :func:`dynamic_exploitability`:
exact dynamic programming of the buyer's own decision problem, the clairvoyant upper bound, or
learned PPO deviators (a lower bound).
"""

import lazy_loader as _lazy

# Names are imported on first use (the CLI's parser imports this package's _cli module without
# loading numpy's heavy dependants); the type stub __init__.pyi lists them.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
