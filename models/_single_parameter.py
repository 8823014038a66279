"""Single-parameter structure of an environment: scalar values times public allocation quantities.

An environment is *single-parameter* (Myerson 1981, *Optimal Auction Design*, §2) when every
agent ``i``'s reward factors as

    r_i(s, a; t) = v_i · q_i(s, a),

with a scalar private value ``v_i`` drawn independently from a distribution ``F_i`` and
allocation quantities ``q_i(s, a)`` that do not depend on the agent's private information.
Then the revenue of any truthful, individually rational mechanism is at most the expected
virtual welfare ``E[max_x Σ_i φ_i(v_i) Σ_{s,a} x(s, a) q_i(s, a)]`` with the virtual value
``φ_i(v) = v − (1 − F_i(v)) / f_i(v)``, and when every ``φ_i`` is non-decreasing (``F_i``
*regular*) the mechanism maximising virtual welfare attains it (Myerson 1981, §6, Lemma 3 and
Theorem 2).

:class:`SingleParameter` declares that structure as data; :class:`ValueDistribution` describes
one agent's ``F_i`` through its virtual value. When ``q`` depends on a non-value part of the type
(the goal cell of the "onecell" gridworld, the patience in matching), the declaration sets
``public_information=True``: the virtual-welfare optimum is then only an upper bound obtained
by treating that part as public.

This module imports nothing from ``bilevel`` or ``bilevel.solvers``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bilevel.models.typing import FloatArray

if TYPE_CHECKING:
    from bilevel.models._env import Environment

__all__ = [
    "SingleParameter",
    "ValueDistribution",
    "check_single_parameter",
    "exponential_values",
    "uniform_values",
    "value_distribution",
]

VirtualValueFn = Callable[[FloatArray], FloatArray]
ValuesFn = Callable[[FloatArray], FloatArray]
AllocationFn = Callable[[FloatArray], FloatArray]

_GRID = 10_001  # points of the regularity check
_REGULARITY_TOL = 1e-9


@dataclass(frozen=True)
class _AffineVirtualValue:
    """``φ(v) = a v − c`` as a picklable callable (environments are sent to worker processes)."""

    a: float
    c: float

    def __call__(self, v: FloatArray) -> FloatArray:
        out: FloatArray = self.a * np.asarray(v, dtype=np.float64) - self.c
        return out


@dataclass(frozen=True, eq=False)
class ValueDistribution:
    """One agent's value distribution ``F``, described by its virtual value.

    Build one with :func:`uniform_values`, :func:`exponential_values` or
    :func:`value_distribution` (which checks regularity); direct construction validates the
    fields but trusts ``regular``.

    Parameters
    ----------
    name : str
        Label, e.g. ``"U[0, 1]"``.
    support : tuple of float
        ``(lo, hi)`` with ``lo < hi``; ``hi`` may be ``inf``.
    virtual_value : callable ``(v: ndarray of any shape) -> ndarray of the same shape``
        Vectorised ``φ(v) = v − (1 − F(v)) / f(v)`` (Myerson 1981, §3).
    regular : bool
        Whether ``φ`` is non-decreasing on the support (Myerson 1981, §6).
    affine : tuple of float, optional
        ``(a, c)`` with ``a > 0`` when ``φ(v) = a v − c``; ``None`` otherwise.
    decreasing_on : tuple of float, optional
        For a non-regular distribution, an interval ``(a, b)`` of the support on which ``φ``
        decreases (reported in error messages).
    """

    name: str
    support: tuple[float, float]
    virtual_value: VirtualValueFn
    regular: bool
    affine: tuple[float, float] | None = None
    decreasing_on: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"expected name as a str, got {type(self.name).__name__}")
        lo, hi = _check_support(self.support)
        object.__setattr__(self, "support", (lo, hi))
        if not callable(self.virtual_value):
            raise TypeError(
                f"expected virtual_value as a callable, got {type(self.virtual_value).__name__}"
            )
        if self.affine is not None:
            a, c = (float(x) for x in self.affine)
            if not (np.isfinite(a) and np.isfinite(c) and a > 0):
                raise ValueError(f"expected affine (a, c) with a > 0 finite, got {self.affine}")
            object.__setattr__(self, "affine", (a, c))

    def phi(self, v: Any) -> FloatArray:
        """The virtual value ``φ(v)``, vectorised; same shape as ``v``."""
        arr = np.asarray(v, dtype=np.float64)
        out = np.asarray(self.virtual_value(arr), dtype=np.float64)
        if out.shape != arr.shape:
            raise ValueError(
                f"expected the virtual value of {self.name} to keep the shape {arr.shape}, "
                f"got {out.shape}"
            )
        return out

    def reserve(self) -> float | None:
        """Myerson's reserve price ``φ^{-1}(0)`` for an affine virtual value, else ``None``."""
        if self.affine is None:
            return None
        a, c = self.affine
        return c / a

    def __repr__(self) -> str:
        kind = "affine" if self.affine is not None else ("regular" if self.regular else "irregular")
        return f"ValueDistribution({self.name!r}, support={self.support}, {kind})"


def _check_support(support: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in support)
    except (TypeError, ValueError) as e:
        raise ValueError(f"expected support as (lo, hi), got {support!r}") from e
    if not (np.isfinite(lo) and lo < hi and not np.isnan(hi)):
        raise ValueError(f"expected support (lo, hi) with finite lo < hi, got {support!r}")
    return lo, hi


def _grid(lo: float, hi: float) -> FloatArray:
    if np.isfinite(hi):
        return np.linspace(lo, hi, _GRID)
    return lo + np.concatenate([[0.0], np.geomspace(1e-6, 1e6, _GRID - 1)])


def uniform_values(lo: float = 0.0, hi: float = 1.0) -> ValueDistribution:
    """Values ``U[lo, hi]``: ``φ(v) = 2 v − hi`` (regular, affine with ``a = 2, c = hi``).

    Examples
    --------
    >>> d = uniform_values(0, 1)
    >>> float(d.phi(0.75)), d.reserve()
    (0.5, 0.5)
    """
    lo_f, hi_f = _check_support((lo, hi))
    if not np.isfinite(hi_f):
        raise ValueError(f"expected a finite upper end for U[lo, hi], got hi = {hi!r}")
    return ValueDistribution(
        f"U[{lo_f:g}, {hi_f:g}]", (lo_f, hi_f), _AffineVirtualValue(2.0, hi_f), True, (2.0, hi_f)
    )


def exponential_values(rate: float = 1.0) -> ValueDistribution:
    """Values ``Exp(rate)`` on ``[0, inf)``: ``φ(v) = v − 1 / rate`` (regular, affine).

    Examples
    --------
    >>> exponential_values(2.0).reserve()
    0.5
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected rate as a float, got {type(rate).__name__}")
    r = float(rate)
    if not (np.isfinite(r) and r > 0):
        raise ValueError(f"expected rate > 0, got {rate!r}")
    return ValueDistribution(
        f"Exp({r:g})", (0.0, float("inf")), _AffineVirtualValue(1.0, 1.0 / r), True, (1.0, 1.0 / r)
    )


def value_distribution(
    name: str,
    virtual_value: VirtualValueFn,
    support: tuple[float, float],
    affine: tuple[float, float] | None = None,
) -> ValueDistribution:
    """A value distribution given by its virtual value, with regularity checked numerically.

    ``φ`` is evaluated on a dense grid of the support (10,001 points; a geometric grid up to
    ``lo + 1e6`` for an unbounded support); the distribution is recorded as ``regular`` when
    ``φ`` never decreases by more than ``1e-9 · max(1, |φ|)`` between neighbouring points.

    Parameters
    ----------
    name : str
    virtual_value : callable ``(v: ndarray) -> ndarray of the same shape``
        ``φ(v) = v − (1 − F(v)) / f(v)``.
    support : tuple of float
        ``(lo, hi)``, ``hi`` may be ``inf``.
    affine : tuple of float, optional
        ``(a, c)`` if ``φ(v) = a v − c``; checked against ``virtual_value`` on the grid.

    Returns
    -------
    ValueDistribution

    Raises
    ------
    ValueError
        If the support is malformed, ``φ`` is not finite on the grid, or ``affine`` does not
        match ``virtual_value``.

    Examples
    --------
    >>> bimodal = value_distribution("bimodal", lambda v: v - 0.3 * np.sin(6 * v), (0, 2))
    >>> bimodal.regular, bimodal.decreasing_on is not None
    (False, True)
    """
    lo, hi = _check_support(support)
    v = _grid(lo, hi)
    phi = np.asarray(virtual_value(v), dtype=np.float64)
    if phi.shape != v.shape:
        raise ValueError(f"expected the virtual value to keep the shape {v.shape}, got {phi.shape}")
    if not np.all(np.isfinite(phi)):
        raise ValueError(f"expected a finite virtual value on the support {support}, got NaN/inf")
    if affine is not None:
        a, c = (float(x) for x in affine)
        if not np.allclose(phi, a * v - c, rtol=1e-9, atol=1e-9):
            raise ValueError(
                f"expected virtual_value to equal {a:g} v - {c:g} (affine), got a different "
                "function on the support"
            )
    step = np.diff(phi)
    bad = step < -_REGULARITY_TOL * np.maximum(1.0, np.abs(phi[:-1]))
    decreasing: tuple[float, float] | None = None
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        last = first
        while last + 1 < bad.size and bad[last + 1]:
            last += 1
        decreasing = (float(v[first]), float(v[last + 1]))
    return ValueDistribution(
        str(name), (lo, hi), virtual_value, not bad.any(), affine, decreasing
    )


@dataclass(frozen=True, eq=False)
class SingleParameter:
    """Declares that rewards factor as ``r_i(s, a; t) = v_i(t) · q_i(s, a; t)`` (Myerson 1981).

    Parameters
    ----------
    values_fn : callable ``(types (k, *type_shape)) -> ndarray of shape (k, n)``
        Each agent's scalar value ``v_i``.
    allocation_fn : callable ``(types (k, *type_shape)) -> ndarray of shape (k, n, S, A)``
        The allocation quantities ``q_i(s, a)``. They must not depend on the values; they may
        depend on a non-value part of the type only with ``public_information=True``.
    distributions : sequence of ValueDistribution
        One per agent, the (independent) distribution of ``v_i`` (stored as a tuple).
    public_information : bool, default False
        Whether ``q`` depends on a non-value part of the type (e.g. the gridworld's goal cell),
        which optimal-revenue bounds then treat as public information.
    nonvalue_part : str, default "the non-value part of the type"
        What that non-value part is, for messages (e.g. ``"the goal cell"``).

    Raises
    ------
    TypeError
        If a function is not callable or a distribution is not a :class:`ValueDistribution`.
    ValueError
        If there are no distributions.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.zeros((2, 1, 2)); q[0, 0, 0] = q[1, 0, 1] = 1.0   # action a sells to agent a
    >>> sp = SingleParameter(lambda t: t, lambda t: np.broadcast_to(q, (t.shape[0], *q.shape)),
    ...                      [uniform_values(0, 1)] * 2)
    >>> sp.n_agents
    2
    """

    values_fn: ValuesFn
    allocation_fn: AllocationFn
    distributions: Sequence[ValueDistribution]
    public_information: bool = False
    nonvalue_part: str = "the non-value part of the type"

    def __post_init__(self) -> None:
        for f in ("values_fn", "allocation_fn"):
            if not callable(getattr(self, f)):
                kind = type(getattr(self, f)).__name__
                raise TypeError(f"expected {f} as a callable, got {kind}")
        dists = tuple(self.distributions)
        if not dists:
            raise ValueError("expected one value distribution per agent, got none")
        for i, d in enumerate(dists):
            if not isinstance(d, ValueDistribution):
                raise TypeError(
                    f"expected distributions[{i}] as a ValueDistribution, got {type(d).__name__}"
                )
        object.__setattr__(self, "distributions", dists)
        object.__setattr__(self, "public_information", bool(self.public_information))

    @property
    def n_agents(self) -> int:
        """Number of agents n (one distribution each)."""
        return len(self.distributions)

    def values(self, types: FloatArray) -> FloatArray:
        """Each agent's scalar value, shape (k, n)."""
        return self._call(self.values_fn, types, 2, "values of shape (k, n)")

    def allocation(self, types: FloatArray) -> FloatArray:
        """The allocation quantities ``q_i(s, a)``, shape (k, n, S, A)."""
        return self._call(self.allocation_fn, types, 4, "an allocation of shape (k, n, S, A)")

    def _call(self, fn: Any, types: FloatArray, ndim: int, what: str) -> FloatArray:
        """``fn(types)`` as float64, checked to have ``ndim`` axes led by (k, n)."""
        types = np.asarray(types, dtype=np.float64)
        out = np.asarray(fn(types), dtype=np.float64)
        if out.ndim != ndim or out.shape[:2] != (types.shape[0], self.n_agents):
            raise ValueError(
                f"expected {what} with (k, n) = ({types.shape[0]}, {self.n_agents}), "
                f"got {out.shape}"
            )
        return out

    def virtual_values(self, values: FloatArray) -> FloatArray:
        """``φ_i(v_i)`` for values of shape (k, n); returns (k, n)."""
        v = np.asarray(values, dtype=np.float64)
        return np.stack([d.phi(v[:, i]) for i, d in enumerate(self.distributions)], axis=1)

    def types_independent_allocation(self, types: FloatArray) -> bool:
        """Whether ``allocation(types)`` is the same array for every profile of ``types``."""
        q = self.allocation(types)
        return bool(np.array_equal(q, np.broadcast_to(q[:1], q.shape)))


def check_single_parameter(
    env: Environment, types: FloatArray | None = None, *, n_samples: int = 64, seed: int = 0
) -> SingleParameter:
    """Check the declared single-parameter structure of ``env`` on sampled types.

    Verifies that ``env.single_parameter`` is set and has one distribution per agent, that the
    values and allocation have shapes (k, n) and (k, n, S, A), that every sampled value lies in
    its distribution's support, and that ``rewards(types) == values[..., None, None] ·
    allocation(types)`` exactly (up to 1e-12 relative).

    Parameters
    ----------
    env : Environment
    types : ndarray of shape (k, *type_shape), optional
        Profiles to check; by default ``n_samples`` profiles drawn with ``seed``.
    n_samples : int, default 64
    seed : int, default 0

    Returns
    -------
    SingleParameter
        The checked declaration.

    Raises
    ------
    ValueError
        If ``env`` declares no single-parameter structure or the declaration does not match its
        rewards.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> check_single_parameter(make_env("sales", n_agents=2, n_items=1)).n_agents
    2
    """
    sp = env.single_parameter
    if sp is None:
        raise ValueError(
            f"expected an environment with single-parameter structure, got {env.name!r} with "
            "single_parameter=None"
        )
    if sp.n_agents != env.n_agents:
        raise ValueError(
            f"expected {env.n_agents} value distributions (one per agent), got {sp.n_agents}"
        )
    if types is None:
        types = env.sample_types(np.random.default_rng(seed), n_samples)
    types = np.asarray(types, dtype=np.float64)
    v = sp.values(types)
    q = sp.allocation(types)
    R = env.rewards(types)
    if q.shape != R.shape:
        raise ValueError(f"expected an allocation of shape (k, n, S, A) = {R.shape}, got {q.shape}")
    for i, d in enumerate(sp.distributions):
        lo, hi = d.support
        vi = v[:, i]
        if np.any(vi < lo - 1e-12) or np.any(vi > hi + 1e-12):
            raise ValueError(
                f"expected agent {i + 1}'s values in its support [{lo:g}, {hi:g}], got values in "
                f"[{vi.min():g}, {vi.max():g}]"
            )
    prod = v[:, :, None, None] * q
    scale = max(1.0, float(np.abs(R).max()))
    err = float(np.abs(R - prod).max())
    if err > 1e-12 * scale:
        where = [int(j) for j in np.unravel_index(int(np.abs(R - prod).argmax()), R.shape)]
        raise ValueError(
            f"expected rewards == values · allocation for {env.name!r}, got a difference of "
            f"{err:.3g} (profile {where[0]}, agent {where[1] + 1}, state {where[2]}, "
            f"action {where[3]})"
        )
    return sp

