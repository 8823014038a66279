"""Reproduction of the AMA paper's Tables 1-5: budgets, the paper's rows, the runner.

:func:`reproduce` designs every cell of a table (VCG, the bound, and each search method) under
a :class:`Budget` (:data:`QUICK` or :data:`FULL`), stores each finished cell in a resumable
result store and writes the table beside the paper's figures (:func:`paper_rows`).
"""

import warnings as _warnings
from typing import Any as _Any

from bilevel.reproduce._budget import FULL, METHODS, QUICK, Budget
from bilevel.reproduce._paper import Row, paper_rows
from bilevel.reproduce._report import table_report
from bilevel.reproduce._run import cell_key, reproduce

__all__ = [
    "FULL",
    "METHODS",
    "QUICK",
    "Budget",
    "Row",
    "cell_key",
    "paper_rows",
    "reproduce",
    "table_report",
]


def __getattr__(name: str) -> _Any:
    # ``Protocol`` was the old name of ``Budget``: kept for one release, with a warning.
    if name == "Protocol":
        _warnings.warn(
            "bilevel.reproduce.Protocol is now bilevel.reproduce.Budget; the old name goes in "
            "the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return Budget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
