"""Inner solvers over arrays: exact occupancy LP, batched dynamic programming, and the
entropy-regularised occupancy program (fast batched torch solver with an implicit backward).

Solvers take an MDP structure (:class:`bilevel.models.TabularMDP`) and reward arrays of shape
(S, A) or (K, S, A) and return an :class:`InnerSolution`; they never see mechanisms. Every
exact solver agrees with every other (tested).

The learned-mechanism families have their own subpackages: :mod:`bilevel.solvers.rl` (batched
PPO and its environment protocol), :mod:`bilevel.solvers.spm` (sequential price mechanisms) and
:mod:`bilevel.solvers.stackelberg` (Stackelberg POMDPs and their followers). Names are imported
on first use, so ``import bilevel.solvers`` loads neither torch nor cvxpy.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
