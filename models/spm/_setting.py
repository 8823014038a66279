"""The :class:`SPMSetting` record: a sequential-price-mechanism setting as validated data.

A setting holds ``n`` agents, ``d`` item types with ``units[j]`` identical units of type ``j``,
the valuation class (unit demand or additive across types) and the value distribution as a
seeded sampler, plus -- when the distribution has finite support -- the enumerated support with
its probabilities (the exact evaluators in :mod:`bilevel.solvers` enumerate it). Values are stored
already normalised so that the highest possible value is 1 (as every setting of Brero et al.
(2021) is; the extended version's Appendix C).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["OBJECTIVES", "VALUATIONS", "SPMSetting"]

Tensor = torch.Tensor

#: The valuation classes: unit demand (an agent holds at most one unit overall, worth its value
#: for that unit's type) and additive across types (at most one unit of each type, values add).
VALUATIONS = ("unit_demand", "additive")

#: The objectives of the SPM decision process.
OBJECTIVES = ("welfare", "revenue", "maxmin")

Sampler = Callable[[int, torch.Generator], Tensor]


@dataclass(frozen=True, eq=False)
class SPMSetting:
    """A sequential-price-mechanism setting: agents, item types, valuations and their law.

    Parameters
    ----------
    name : str
        Short name (the registry key for built-in settings).
    n_agents : int
        Number of agents ``n``.
    units : tuple of int, length d
        Identical units available of each item type (distinct items: ``(1, 1, ..., 1)``).
    sampler : callable (num, torch.Generator) -> Tensor, shape (num, n, d), float64
        Draws ``num`` independent value profiles with the given generator (on its device);
        ``values[b, i, j]`` is agent ``i``'s normalised value for one unit of type ``j``.
    valuation : {"unit_demand", "additive"}
        Unit demand: ``v_i(S) = max_{j in S} v_ij``. Additive across types:
        ``v_i(S) = sum_{j in S} v_ij`` with at most one unit of each type per agent.
    support : Tensor, shape (K, n, d), float64, or None
        Every value profile of a finite-support distribution, when it is given jointly.
    probs : Tensor, shape (K,), float64, or None
        The probability of each support profile (sums to 1).
    marginals : tuple of n pairs (Tensor (M_i, d), Tensor (M_i,)), or None
        For independent finite-support values: agent ``i``'s value vectors and their
        probabilities. The joint support is then their product (see :meth:`profiles`), which is
        never materialised at once.
    mixture : tuple of (float, Tensor (M, d), Tensor (M,)), or None
        For values that are i.i.d. across agents given a latent component (e.g. two worlds'
        regime): each component's weight, per-agent value vectors and their probabilities.
        Independent i.i.d. marginals imply one component (see :meth:`iid_components`).
    objective : {"welfare", "revenue", "maxmin"}
        The setting's default objective.
    scale : float
        The raw maximum value the setting's values were divided by.
    description : str
        One line for listings.
    params : mapping of str to Any
        The constructor parameters the setting was built with.

    Raises
    ------
    ValueError
        For inconsistent shapes, probabilities that are not a distribution, or values outside
        ``[0, 1]``.
    """

    name: str
    n_agents: int
    units: tuple[int, ...]
    sampler: Sampler
    valuation: str = "unit_demand"
    support: Tensor | None = None
    probs: Tensor | None = None
    marginals: tuple[tuple[Tensor, Tensor], ...] | None = None
    mixture: tuple[tuple[float, Tensor, Tensor], ...] | None = None
    objective: str = "welfare"
    scale: float = 1.0
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_agents < 1:
            raise ValueError(f"expected n_agents >= 1, got {self.n_agents}")
        if len(self.units) < 1 or any(int(u) < 1 for u in self.units):
            raise ValueError(f"expected units as a non-empty tuple of ints >= 1, got {self.units}")
        if self.valuation not in VALUATIONS:
            raise ValueError(f"expected valuation in {VALUATIONS}, got {self.valuation!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"expected objective in {OBJECTIVES}, got {self.objective!r}")
        if (self.support is None) != (self.probs is None):
            raise ValueError("expected support and probs both given or both None")
        if self.support is not None and self.probs is not None:
            shape = (self.n_agents, self.n_types)
            if self.support.ndim != 3 or tuple(self.support.shape[1:]) != shape:
                raise ValueError(
                    f"expected support of shape (K, {shape[0]}, {shape[1]}), "
                    f"got {tuple(self.support.shape)}"
                )
            if tuple(self.probs.shape) != (self.support.shape[0],):
                raise ValueError(
                    f"expected probs of shape ({self.support.shape[0]},), "
                    f"got {tuple(self.probs.shape)}"
                )
            if bool((self.probs < 0).any()) or abs(float(self.probs.sum()) - 1.0) > 1e-9:
                raise ValueError("expected probs to be a probability vector")
            if bool((self.support < 0).any()) or bool((self.support > 1 + 1e-12).any()):
                raise ValueError("expected normalised support values in [0, 1]")
        if self.mixture is not None:
            if abs(sum(w for w, _, _ in self.mixture) - 1.0) > 1e-9:
                raise ValueError("expected mixture weights summing to 1")
            for w, vals, pr in self.mixture:
                if w < 0 or vals.ndim != 2 or vals.shape[1] != self.n_types:
                    raise ValueError(
                        f"expected mixture components (w >= 0, (M, {self.n_types}), (M,)), "
                        f"got w={w}, {tuple(vals.shape)}"
                    )
                if pr.shape != vals.shape[:1] or abs(float(pr.sum()) - 1.0) > 1e-9:
                    raise ValueError("expected each mixture component's probs to sum to 1")
        if self.marginals is not None:
            if len(self.marginals) != self.n_agents:
                raise ValueError(
                    f"expected {self.n_agents} marginals, got {len(self.marginals)}"
                )
            for i, (vals, pr) in enumerate(self.marginals):
                if vals.ndim != 2 or vals.shape[1] != self.n_types or pr.shape != vals.shape[:1]:
                    raise ValueError(
                        f"expected marginal {i} as (M, {self.n_types}) values and (M,) probs, "
                        f"got {tuple(vals.shape)} and {tuple(pr.shape)}"
                    )
                if bool((pr < 0).any()) or abs(float(pr.sum()) - 1.0) > 1e-9:
                    raise ValueError(f"expected marginal {i}'s probs to be a distribution")
                if bool((vals < 0).any()) or bool((vals > 1 + 1e-12).any()):
                    raise ValueError(f"expected marginal {i}'s values in [0, 1]")

    # ------------------------------------------------------------------ derived sizes

    @property
    def n_types(self) -> int:
        """Number of item types ``d``."""
        return len(self.units)

    @property
    def total_units(self) -> int:
        """Total number of units over all types."""
        return int(sum(self.units))

    @property
    def finite(self) -> bool:
        """Whether the value distribution has a finite support that can be enumerated."""
        return self.support is not None or self.marginals is not None

    @property
    def independent(self) -> bool:
        """Whether agents' values are independent with known finite marginals."""
        return self.marginals is not None

    @property
    def iid(self) -> bool:
        """Whether agents' values are i.i.d. with a known finite marginal."""
        if self.marginals is None:
            return False
        v0, p0 = self.marginals[0]
        return all(
            v.shape == v0.shape and bool(torch.equal(v, v0)) and bool(torch.equal(p, p0))
            for v, p in self.marginals
        )

    def iid_components(self) -> tuple[tuple[float, Tensor, Tensor], ...] | None:
        """Agents i.i.d. given a latent component: ``(weight, values (M, d), probs (M,))`` each.

        Returns
        -------
        tuple of (float, Tensor, Tensor), or None
            The ``mixture`` field, or one component for i.i.d. marginals, or None.
        """
        if self.mixture is not None:
            return self.mixture
        if self.iid and self.marginals is not None:
            v0, p0 = self.marginals[0]
            return ((1.0, v0, p0),)
        return None

    @property
    def n_profiles(self) -> int:
        """Size of the finite support (0 for continuous laws)."""
        if self.support is not None:
            return int(self.support.shape[0])
        if self.marginals is not None:
            k = 1
            for v, _ in self.marginals:
                k *= int(v.shape[0])
            return k
        return 0

    def profiles(self, chunk: int = 65536) -> Iterator[tuple[Tensor, Tensor]]:
        """Iterate over the finite support in chunks.

        Parameters
        ----------
        chunk : int, optional
            Maximum number of profiles per chunk.

        Yields
        ------
        values : Tensor, shape (c, n, d), float64
        probs : Tensor, shape (c,), float64

        Raises
        ------
        ValueError
            When the distribution is continuous.
        """
        if chunk < 1:
            raise ValueError(f"expected chunk >= 1, got {chunk}")
        if self.support is not None and self.probs is not None:
            for s in range(0, int(self.support.shape[0]), chunk):
                yield self.support[s : s + chunk], self.probs[s : s + chunk]
            return
        if self.marginals is None:
            raise ValueError(f"expected a finite-support setting, got continuous {self.name!r}")
        sizes = [int(v.shape[0]) for v, _ in self.marginals]
        total = self.n_profiles
        for s in range(0, total, chunk):
            idx = torch.arange(s, min(total, s + chunk), dtype=torch.int64)
            vals = []
            prob = torch.ones(idx.shape[0], dtype=torch.float64)
            rest = idx.clone()
            # agent n-1 varies fastest (row-major order over agents)
            digits = []
            for m in reversed(sizes):
                digits.append(rest % m)
                rest = rest // m
            digits.reverse()
            for i, (v, p) in enumerate(self.marginals):
                vals.append(v.to(torch.float64)[digits[i]])
                prob = prob * p.to(torch.float64)[digits[i]]
            yield torch.stack(vals, dim=1), prob

    # ------------------------------------------------------------------ sampling

    def sample(
        self,
        num: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``num`` value profiles.

        Parameters
        ----------
        num : int
            Number of profiles.
        generator : torch.Generator
            The only source of randomness; profiles are drawn on its device.
        dtype : torch.dtype, optional
            Returned dtype (sampling itself is in float64).
        device : torch.device or str, optional
            Returned device (default: the generator's).

        Returns
        -------
        Tensor, shape (num, n, d)
            Normalised values.

        Raises
        ------
        TypeError, ValueError
            For a non-integer or negative ``num`` or a missing generator.
        """
        if isinstance(num, bool) or not isinstance(num, int):
            raise TypeError(f"expected num as an int, got {type(num).__name__}")
        if num < 0:
            raise ValueError(f"expected num >= 0, got {num}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
        values = self.sampler(num, generator)
        return values.to(dtype=dtype, device=device if device is not None else values.device)

    def type_values(self) -> tuple[tuple[float, ...], ...] | None:
        """The distinct values of each item type over the support (None when continuous).

        Returns
        -------
        tuple of d sorted tuples of float, or None
        """
        if self.support is not None:
            cols = [self.support[:, :, j].reshape(-1) for j in range(self.n_types)]
        elif self.marginals is not None:
            cols = [
                torch.cat([v[:, j] for v, _ in self.marginals]) for j in range(self.n_types)
            ]
        else:
            return None
        return tuple(tuple(float(x) for x in torch.unique(c).tolist()) for c in cols)

    def __repr__(self) -> str:
        return (
            f"SPMSetting(name={self.name!r}, n_agents={self.n_agents}, units={self.units}, "
            f"valuation={self.valuation!r}, objective={self.objective!r}, "
            f"finite={self.finite})"
        )


def sample_from_support(
    support: Tensor, probs: Tensor, num: int, generator: torch.Generator
) -> Tensor:
    """Draw ``num`` profiles from a finite support (for settings defined by enumeration).

    Parameters
    ----------
    support : Tensor, shape (K, n, d)
    probs : Tensor, shape (K,)
    num : int
    generator : torch.Generator

    Returns
    -------
    Tensor, shape (num, n, d), float64, on the generator's device
    """
    dev = generator.device
    if num == 0:
        return torch.zeros((0, *support.shape[1:]), dtype=torch.float64, device=dev)
    idx = torch.multinomial(probs.to(dev), num, replacement=True, generator=generator)
    return support.to(dev, torch.float64)[idx]
