"""Reproduction of the AMA paper's Tables 1-5: budgets, the paper's rows, the runner.

:func:`reproduce` designs every cell of a table (VCG, the bound, and each search method) under
a :class:`Budget` (:data:`QUICK` or :data:`FULL`), stores each finished cell in a resumable
result store and writes the table beside the paper's figures (:func:`paper_rows`).
"""

from bilevel.reproduce._run import (
    FULL,
    METHODS,
    QUICK,
    Budget,
    Row,
    cell_key,
    paper_rows,
    reproduce,
    table_report,
)

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
