"""Outer searchers over AMA parameters and the driver that runs them."""

from bilevel.search._checkpoint import Checkpoint, FileCheckpoint, StoreCheckpoint
from bilevel.search._cma import CMAES, CMAESState
from bilevel.search._driver import DesignProblem, Intermediate, Searcher, SearchResult, run_search
from bilevel.search._first_order import FirstOrder, FirstOrderState, Params
from bilevel.search._grid import GridSearch, GridState, score_chunk, sobol_candidates
from bilevel.search._multistart import MultiStart, MultiStartState, score_on_profiles
from bilevel.search._tying import TYINGS, tying_matrix
from bilevel.search._zeroth_order import ZerothOrder, ZerothOrderState

__all__ = [
    "CMAES",
    "TYINGS",
    "CMAESState",
    "Checkpoint",
    "DesignProblem",
    "FileCheckpoint",
    "FirstOrder",
    "FirstOrderState",
    "GridSearch",
    "GridState",
    "Intermediate",
    "MultiStart",
    "MultiStartState",
    "Params",
    "SearchResult",
    "Searcher",
    "StoreCheckpoint",
    "ZerothOrder",
    "ZerothOrderState",
    "run_search",
    "score_chunk",
    "score_on_profiles",
    "sobol_candidates",
    "tying_matrix",
]
