"""The result of an exploitability audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bilevel.models.typing import FloatArray

__all__ = ["KINDS", "NOTIONS", "Exploitability"]

Kind = Literal["exact", "lower_bound", "upper_bound"]
Notion = Literal["ex_post", "bayes", "clairvoyant"]
KINDS: tuple[str, ...] = ("exact", "lower_bound", "upper_bound")
NOTIONS: tuple[str, ...] = ("ex_post", "bayes", "clairvoyant")


@dataclass(frozen=True, eq=False)
class Exploitability:
    """Exploitability of a mechanism at truthful reporting (NashConv, not divided by n).

    ``total = sum_i per_agent[i]`` where ``per_agent[i]`` is agent i's best unilateral gain from
    misreporting while the others report truthfully.

    Attributes
    ----------
    total : float
        Sum of the per-agent gains.
    per_agent : ndarray of shape (n,)
        Best deviation gain of each agent (≥ 0 up to rounding when the truthful report is among
        the candidates).
    se : float or None
        Standard error of ``total`` (paired: the same profiles for truthful and deviating
        reports); ``None`` when the profile expectation is exact.
    per_agent_se : ndarray of shape (n,), or None
        Standard errors of ``per_agent``; ``None`` when exact.
    best_deviation : tuple of n ndarrays
        Agent i's argmax misreports: shape (K, *slice) for the ex-post notion (one per profile),
        (V, *slice) for the Bayes notion (one per own type of the outer sample or support), where
        ``slice`` is the shape of one agent's type (``()`` for scalar values).
    kind : {"exact", "lower_bound", "upper_bound"}
        Whether ``total`` is exact or a bound on the true exploitability.
    method : str
        The estimator, e.g. ``"static-enumeration"`` or ``"static-grid(G=41)+golden"``.
    resolution : int or None
        Grid size of the misreport search (``None`` for an exhaustive candidate set).
    n_profiles : int
        Number of type profiles the expectation runs over.
    notion : {"ex_post", "bayes"}
        ``"ex_post"``: ``E_t[max_{t'_i} u_i(t_i; t'_i, t_-i)] - E_t[u_i(t)]``; ``"bayes"``:
        ``E_{t_i}[max_{t'_i} E_{t_-i} u_i(t_i; t'_i, t_-i)] - E_t[u_i(t)]``.
    truthful_utility : ndarray of shape (n,)
        ``E_t[u_i(t)]`` at truthful reporting.

    Examples
    --------
    >>> import numpy as np
    >>> r = Exploitability(0.5, np.array([0.5]), None, None, (np.array([0.0]),), "exact",
    ...                    "static-enumeration", None, 1, "ex_post", np.array([0.0]))
    >>> r.to_dict()["total"], r.kind
    (0.5, 'exact')
    """

    total: float
    per_agent: FloatArray
    se: float | None
    per_agent_se: FloatArray | None
    best_deviation: tuple[FloatArray, ...]
    kind: Kind
    method: str
    resolution: int | None
    n_profiles: int
    notion: Notion
    truthful_utility: FloatArray

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"expected kind in {KINDS}, got {self.kind!r}")
        if self.notion not in NOTIONS:
            raise ValueError(f"expected notion in {NOTIONS}, got {self.notion!r}")
        per = np.array(self.per_agent, dtype=np.float64)
        if per.ndim != 1:
            raise ValueError(f"expected per_agent of shape (n,), got {per.shape}")
        if len(self.best_deviation) != per.size:
            raise ValueError(
                f"expected {per.size} best deviations (one per agent), got "
                f"{len(self.best_deviation)}"
            )
        per.setflags(write=False)
        object.__setattr__(self, "per_agent", per)
        object.__setattr__(self, "total", float(self.total))

    @property
    def n_agents(self) -> int:
        """Number of agents n."""
        return int(self.per_agent.size)

    @property
    def max_gain(self) -> float:
        """Largest per-agent gain."""
        return float(self.per_agent.max())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable representation (arrays as nested lists)."""
        return {
            "total": self.total,
            "per_agent": self.per_agent.tolist(),
            "se": self.se,
            "per_agent_se": None if self.per_agent_se is None else self.per_agent_se.tolist(),
            "best_deviation": [np.asarray(d).tolist() for d in self.best_deviation],
            "kind": self.kind,
            "method": self.method,
            "resolution": self.resolution,
            "n_profiles": self.n_profiles,
            "notion": self.notion,
            "truthful_utility": np.asarray(self.truthful_utility).tolist(),
        }

    def rows(self) -> list[list[str]]:
        """Table rows ``agent | gain | se | best deviation`` (header first) and the total."""
        out = [["agent", "gain", "se", "best deviation"]]
        for i in range(self.n_agents):
            se = "exact" if self.per_agent_se is None else f"{self.per_agent_se[i]:.3g}"
            out.append([str(i + 1), f"{self.per_agent[i]:.6g}", se,
                        _describe(self.best_deviation[i])])
        se = "exact" if self.se is None else f"{self.se:.3g}"
        out.append(["total", f"{self.total:.6g}", se, f"({self.kind})"])
        return out

    def __str__(self) -> str:
        head = (f"exploitability ({self.notion}, {self.method}, {self.n_profiles} profiles): "
                f"{self.total:.6g} [{self.kind}]")
        return head + "\n" + format_table(self.rows())

    def __repr__(self) -> str:
        se = "" if self.se is None else f" ± {self.se:.3g}"
        return (f"Exploitability(total={self.total:.6g}{se}, kind={self.kind!r}, "
                f"notion={self.notion!r}, method={self.method!r})")


def format_table(rows: list[list[str]]) -> str:
    """Align rows as a plain-text table (first row = header, then a rule)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _describe(dev: FloatArray) -> str:
    """A short text for an agent's argmax misreports: the value, or a range / the shape."""
    a = np.asarray(dev, dtype=np.float64)
    if a.size == 0:
        return "-"
    if a.ndim == 1:
        if a.size == 1:
            return f"{a[0]:.4g}"
        return f"{a.min():.4g} .. {a.max():.4g} (per profile)"
    return f"array {a.shape}"
