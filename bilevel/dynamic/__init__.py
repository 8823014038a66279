"""Learned dynamic mechanisms: a mechanism network trained min–max against learned deviators.

:class:`DynamicMechanismDesigner` trains a :class:`bilevel.solvers.dynamic.MechanismNet` on a
bandit auction of :mod:`bilevel.models.dynamic` against truthful-init PPO deviators, searches
the profit target δ, and audits the result exactly where the setting is tabular; the report
(:func:`write_dynamic_report`) puts it beside the dynamic pivot mechanism, the best posted price
and (one period) the optimum. The ``bilevel dynamic`` subcommand sits beside it.
"""

import lazy_loader as _lazy

# Names are imported on first use (the CLI's parser imports this package's _cli module without
# loading torch); the type stub __init__.pyi lists them.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
