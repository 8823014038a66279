"""The :class:`SPMValue` record returned by the SPM exact evaluators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SPMValue"]


@dataclass(frozen=True)
class SPMValue:
    """An expected objective value.

    Attributes
    ----------
    value : float
        The expected objective (normalised units of the setting).
    se : float
        Monte Carlo standard error (0 for exact methods).
    method : str
        How it was obtained: ``"enumeration"``, ``"monte_carlo"``, ``"closed_form"``,
        ``"dp"`` (dynamic program) or ``"search"`` (exhaustive search over a price grid).
    n_profiles : int
        Profiles enumerated or sampled (0 for closed forms and DPs over marginals).
    details : mapping of str to Any
        Method-specific extras, e.g. an optimal price.
    """

    value: float
    se: float
    method: str
    n_profiles: int
    details: Mapping[str, Any] = field(default_factory=dict)
