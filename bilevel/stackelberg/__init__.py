"""Stackelberg leaders against learning followers: designer, exact evaluation, report.

:class:`StackelbergDesigner` trains a leader by PPO on the batched Stackelberg POMDP of
:mod:`bilevel.solvers.stackelberg` for a game of :mod:`bilevel.models.stackelberg`; the leader
is scored exactly against the followers' certified response (:func:`evaluate_leader`). The
report (:func:`stackelberg_report`) and the ``bilevel stackelberg`` subcommand sit beside it.
"""

from bilevel.stackelberg._designer import StackelbergDesigner
from bilevel.stackelberg._evaluation import (
    LeaderActor,
    LeaderEvaluation,
    evaluate_leader,
    worst_certified_value,
)
from bilevel.stackelberg._report import (
    compare_critics,
    dominant_outcome,
    stackelberg_report,
    summary_rows,
)
from bilevel.stackelberg._result import StackelbergResult, load_stackelberg

__all__ = [
    "LeaderActor",
    "LeaderEvaluation",
    "StackelbergDesigner",
    "StackelbergResult",
    "compare_critics",
    "dominant_outcome",
    "evaluate_leader",
    "load_stackelberg",
    "stackelberg_report",
    "summary_rows",
    "worst_certified_value",
]
