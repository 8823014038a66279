"""Stackelberg games as validated data: leaders against learning followers.

The settings of Brero et al., *Stackelberg POMDP* (the normal-form games of Appendix G.1, the
matrix design game of Appendix G.2, simple allocation of §5.1, message SPMs of §5.2), as the
authors' code builds them (which also holds normal-form games 3 and 4).

Every game is a frozen dataclass of arrays with independent finite type priors, finite follower
actions, a known optimum where theory gives one, and a ``payoffs(<tabular leader policy>)``
method returning the exact payoff table ``(follower (..., K, J, n), leader (..., K, J))`` over
type profiles ``K`` × joint actions ``J`` (first follower most significant), which is all the
follower dynamics, the B-CCE certificate and the exact evaluators of :mod:`bilevel.solvers` need.

* :class:`NormalFormGame` — four bimatrix games, deterministic or randomised leader;
* :class:`MatrixDesignGame` — costless leader transfers on a 2×2 game between two followers;
* :class:`SimpleAllocationGame` — one follower, ``k`` uniform types, ``m`` messages;
* :class:`MSPMGame` — message sequential price mechanisms (PI and MSGSpace(k) settings).

Examples
--------
>>> from bilevel.models.stackelberg import make_game
>>> g = make_game("normal_form:game_2")
>>> follower, leader = g.payoffs(0)         # commit to row 0
>>> follower[0, :, 0].tolist()              # follower utility of each column
[0.5, 0.0, 0.0]
>>> [spec.name for spec in list_games()]
['matrix_design', 'mspm', 'normal_form', 'simple_allocation']
"""

from bilevel.models.stackelberg._base import StackelbergGame
from bilevel.models.stackelberg._matrix_design import (
    MATRIX_DESIGN_PAYOFFS,
    MatrixDesignGame,
    matrix_design_game,
)
from bilevel.models.stackelberg._mspm import MSPMGame, mspm_game
from bilevel.models.stackelberg._normal_form import (
    NORMAL_FORM_GAMES,
    NormalFormGame,
    normal_form_game,
)
from bilevel.models.stackelberg._registry import GameSpec, list_games, make_game, register_game
from bilevel.models.stackelberg._simple_allocation import (
    SimpleAllocationGame,
    simple_allocation_game,
)

register_game("normal_form", normal_form_game, "bimatrix games 1-4 (1, 2: App. G.1)")
register_game("matrix_design", matrix_design_game, "costless transfers on a 2x2 game (App. G.2)")
register_game("simple_allocation", simple_allocation_game, "one follower, m messages (§5.1)")
register_game("mspm", mspm_game, "message sequential price mechanisms, PI / MSGSpace (§5.2)")

__all__ = [
    "MATRIX_DESIGN_PAYOFFS",
    "NORMAL_FORM_GAMES",
    "GameSpec",
    "MSPMGame",
    "MatrixDesignGame",
    "NormalFormGame",
    "SimpleAllocationGame",
    "StackelbergGame",
    "list_games",
    "make_game",
    "matrix_design_game",
    "mspm_game",
    "normal_form_game",
    "register_game",
    "simple_allocation_game",
]
