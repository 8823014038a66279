"""A registered constructor (environments, SPM settings, Stackelberg games share it)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Spec"]

T = TypeVar("T")


@dataclass(frozen=True)
class Spec(Generic[T]):
    """A registered constructor.

    Attributes
    ----------
    name : str
        Registry name.
    builder : callable returning T
        Keyword-only constructor.
    description : str
        One line for listings.
    """

    name: str
    builder: Callable[..., T]
    description: str

    @property
    def parameters(self) -> dict[str, Any]:
        """Constructor parameters with their defaults (None where there is no default)."""
        sig = inspect.signature(self.builder)
        return {
            k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in sig.parameters.items()
        }
