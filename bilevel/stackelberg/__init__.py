"""Stackelberg leaders against learning followers: designer, exact evaluation, report.

:class:`StackelbergDesigner` trains a leader by PPO on the batched Stackelberg POMDP of
:mod:`bilevel.solvers.stackelberg` for a game of :mod:`bilevel.models.stackelberg`; the leader
is scored exactly against the followers' certified response (:func:`evaluate_leader`). The
report (:func:`stackelberg_report`) and the ``bilevel stackelberg`` subcommand sit beside it.
"""

import lazy_loader as _lazy

# Names are imported on first use (the CLI's parser imports this package's _cli module without
# loading torch or matplotlib); the type stub __init__.pyi lists them.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
