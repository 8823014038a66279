"""The rows of the AMA paper's Tables 1–5 with the paper's values (:func:`paper_rows`).

Rows are read from the packaged ``data/paper_tables.csv``; each builds its table-faithful
environment (:meth:`Row.env`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

from bilevel.models import Environment, make_env

__all__ = ["Row", "paper_rows"]

_PAPER_COLUMN = {"grid": "grid", "zeroth_order": "zeroth_order", "first_order": "reg_lp"}


@dataclass(frozen=True)
class Row:
    """One row of a paper table with the paper's values."""

    table: int
    environment: str
    distribution: str
    objective: str
    n_agents: int
    size: int
    paper: dict[str, float]

    @property
    def label(self) -> str:
        """E.g. ``"n=3 m=2"``."""
        letter = {"sales": "m", "scheduling": "T", "gridworld": "G"}[self.environment]
        return f"n={self.n_agents} {letter}={self.size}"

    @property
    def maximize(self) -> bool:
        """Revenue is maximised, makespan minimised."""
        return self.objective != "makespan"

    def env(self) -> Environment:
        """The table-faithful environment of this row."""
        if self.environment == "sales":
            return make_env("sales", n_agents=self.n_agents, n_items=self.size,
                            dist=self.distribution)
        if self.environment == "scheduling":
            return make_env("scheduling", n_agents=self.n_agents, n_tasks=self.size,
                            dist=self.distribution, makespan="reference")
        return make_env("gridworld", n_agents=self.n_agents, grid=self.size,
                        dist=self.distribution, gamma=0.9)


def paper_rows(table: int | None = None) -> list[Row]:
    """The rows of the paper's Tables 1–5 (all, or one table)."""
    text = resources.files("bilevel.reproduce").joinpath("data/paper_tables.csv").read_text()
    rows = []
    for r in csv.DictReader(text.splitlines()):
        if table is not None and int(r["table"]) != table:
            continue
        paper = {k: float(r[k]) for k in ("vcg", "grid", "zeroth_order", "reg_lp")}
        rows.append(Row(int(r["table"]), r["environment"], r["distribution"], r["objective"],
                        int(r["n_agents"]), int(r["size"]), paper))
    return rows


def _paper_value(row: Row, method: str) -> float | None:
    if method == "vcg":
        return row.paper["vcg"]
    if method == "bound":
        return None
    if method in ("multistart", "cma"):
        vals = [row.paper[k] for k in ("grid", "zeroth_order", "reg_lp")]
        return max(vals) if row.maximize else min(vals)
    return row.paper[_PAPER_COLUMN[method]]
