"""Outer searchers over AMA parameters and the driver that runs them."""

from bilevel.search._driver import DesignProblem, Intermediate, Searcher, SearchResult, run_search
from bilevel.search._grid import GridSearch, GridState, sobol_candidates

__all__ = [
    "DesignProblem",
    "GridSearch",
    "GridState",
    "Intermediate",
    "SearchResult",
    "Searcher",
    "run_search",
    "sobol_candidates",
]
