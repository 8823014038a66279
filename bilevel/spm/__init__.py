"""Learned sequential price mechanisms: a PPO-trained mechanism over the SPM decision process.

:class:`SPMDesigner` trains the mechanism on a setting of :mod:`bilevel.models.spm`, evaluates
it exactly where the value profiles can be enumerated, and compares it with the expected
optimum, random serial dictatorship and the best static mechanisms (:func:`best_values`).
The report (:func:`write_spm_report`) and the ``bilevel spm`` subcommand sit beside it.

"""

import lazy_loader as _lazy

# Names are imported on first use (the CLI's parser imports this package's _cli module without
# loading torch or matplotlib); the type stub __init__.pyi lists them.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
