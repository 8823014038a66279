"""The :class:`BanditAuctionSetting` record: a bandit auction with evolving types as data.

The bandit auction (the paper's Appendix D.2 and Table 2): ``n`` buyers and ``m`` goods over a
horizon of ``T`` periods with discount ``γ``. Each period every buyer reports its current value
vector, the mechanism allocates each good to at most one buyer (the rest to a null buyer) and
charges payments; buyer ``i`` gets ``Σ_j v_ij x_ij - p_i`` and the seller
``Σ_i p_i - Σ_ij c_ij x_ij``. A good that is consumed moves its value by an
experience-dependent kernel (:mod:`bilevel.models.dynamic._kernels`): buyers learn their values
by consuming. What the paper leaves open has these defaults: ``T = 3``, ``γ = 1``, costs 0, one
buyer and one good, realised (drawn, public) allocations.

Allocation modes
    ``"realized"`` (default): each good's winner is drawn from its column of allocation
    probabilities and made public; a value moves iff its good was actually consumed, and
    experience counts whole consumptions (a finite state space). ``"expected"`` (literal): the
    experience sums the probabilities, rewards use the probabilities, and the next value is
    drawn from the mixture of the kernel and "unchanged". For deterministic mechanisms
    (allocations in {0, 1}) the two coincide exactly.

Experience indexing
    Table 2 counts the experience of the discrete kernel *including* the current allocation
    (the first consumption has ``α = 1/2``) and that of the continuous kernel *excluding* it
    (the first consumption has ``α = 0``, a unit-scale logit step). Both are kept literally
    through ``experience_includes_current`` (default: True for discrete, False for continuous).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from bilevel.models.dynamic._random import Salt, draw_salt, normals, uniforms

__all__ = ["ALLOCATIONS", "TYPES", "BanditAuctionSetting"]

Tensor = torch.Tensor

#: Type spaces: a finite support, or a box with a logit-space random walk.
TYPES = ("discrete", "continuous")

#: Allocation modes (see the module docstring).
ALLOCATIONS = ("realized", "expected")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _cost_matrix(costs: object, n: int, m: int) -> tuple[tuple[float, ...], ...]:
    bad = ValueError(f"expected costs as a float or {n} rows of {m} finite floats, got {costs!r}")
    if isinstance(costs, (str, bytes)) or not isinstance(costs, Iterable):
        raise bad
    rows = [r for r in costs]
    if len(rows) != n:
        raise bad
    out = []
    for r in rows:
        if isinstance(r, (str, bytes)) or not isinstance(r, Iterable):
            raise bad
        vals = list(r)
        if len(vals) != m or not all(_is_real(c) for c in vals):
            raise bad
        out.append(tuple(float(c) for c in vals))
    return tuple(out)


@dataclass(frozen=True)
class BanditAuctionSetting:
    """A bandit auction: buyers, goods, horizon, value law and kernels, validated.

    Parameters
    ----------
    name : str
        Short name (the registry key for built-in settings).
    n_buyers : int
        Number of buyers ``n >= 1``.
    n_goods : int
        Number of goods ``m >= 1``.
    horizon : int
        Number of periods ``T >= 1``.
    gamma : float
        Discount ``γ`` in ``(0, 1]``.
    types : {"discrete", "continuous"}
    allocation : {"realized", "expected"}
    costs : float or n sequences of m floats
        Cost ``c_ij`` of giving good ``j`` to buyer ``i`` (a constant for all pairs, or the
        matrix); stored as an ``n × m`` tuple of tuples.
    experience_includes_current : bool or None
        Whether ``α`` counts the current allocation; None takes the type space's convention
        (discrete True, continuous False).
    support : sequence of float
        Discrete value support ``V`` (strictly increasing), default ``(1, 2, 3)``.
    prior : sequence of float or None
        Discrete initial law over ``support`` (default uniform).
    kernel_rate : float
        ``α = kernel_rate × experience`` (default 1/2).
    low, high : float
        Continuous value box (default ``[0, 5]``).
    prior_mean, prior_std : float
        Continuous initial law ``N(mean, std²)`` clipped into the box (default 2.5, 0.1).
    sigma_no : float
        Continuous logit drift of a good that is not allocated (default 0.01).
    description : str
        One line for listings.

    Raises
    ------
    ValueError, TypeError
        "expected …, got …" for any inconsistent field.

    Examples
    --------
    >>> s = BanditAuctionSetting(n_buyers=2, n_goods=1, horizon=3)
    >>> s.types, s.experience_includes_current, s.n_reports, s.costs
    ('discrete', True, 3, ((0.0,), (0.0,)))
    >>> BanditAuctionSetting(types="continuous").experience_includes_current
    False
    >>> BanditAuctionSetting(horizon=0)
    Traceback (most recent call last):
    ...
    ValueError: expected horizon as an int >= 1, got 0
    """

    name: str = "bandit"
    n_buyers: int = 1
    n_goods: int = 1
    horizon: int = 3
    gamma: float = 1.0
    types: str = "discrete"
    allocation: str = "realized"
    costs: float | tuple[tuple[float, ...], ...] = 0.0
    experience_includes_current: bool | None = None
    support: tuple[float, ...] = (1.0, 2.0, 3.0)
    prior: tuple[float, ...] | None = None
    kernel_rate: float = 0.5
    low: float = 0.0
    high: float = 5.0
    prior_mean: float = 2.5
    prior_std: float = 0.1
    sigma_no: float = 0.01
    description: str = ""

    def __post_init__(self) -> None:
        for key in ("n_buyers", "n_goods", "horizon"):
            val = getattr(self, key)
            if not _is_int(val) or val < 1:
                raise ValueError(f"expected {key} as an int >= 1, got {val!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"expected name as a non-empty str, got {self.name!r}")
        if not _is_real(self.gamma) or not 0.0 < float(self.gamma) <= 1.0:
            raise ValueError(f"expected gamma in (0, 1], got {self.gamma!r}")
        if self.types not in TYPES:
            raise ValueError(f"expected types in {TYPES}, got {self.types!r}")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"expected allocation in {ALLOCATIONS}, got {self.allocation!r}")
        n, m = self.n_buyers, self.n_goods
        costs: object = self.costs
        if _is_real(costs):
            assert isinstance(costs, (int, float))
            matrix = tuple(tuple(float(costs) for _ in range(m)) for _ in range(n))
        else:
            matrix = _cost_matrix(costs, n, m)
        object.__setattr__(self, "costs", matrix)
        object.__setattr__(self, "gamma", float(self.gamma))
        inc = self.experience_includes_current
        if inc is None:
            inc = self.types == "discrete"
        if not isinstance(inc, bool):
            raise ValueError(f"expected experience_includes_current as a bool or None, got {inc!r}")
        object.__setattr__(self, "experience_includes_current", inc)
        for key in ("kernel_rate", "low", "high", "prior_mean", "prior_std", "sigma_no"):
            if not _is_real(getattr(self, key)):
                raise ValueError(f"expected {key} as a finite float, got {getattr(self, key)!r}")
            object.__setattr__(self, key, float(getattr(self, key)))
        if self.kernel_rate < 0:
            raise ValueError(f"expected kernel_rate >= 0, got {self.kernel_rate}")
        sup = tuple(self.support)
        if not sup or not all(_is_real(v) for v in sup):
            raise ValueError(f"expected support as a non-empty sequence of floats, got {sup!r}")
        sup = tuple(float(v) for v in sup)
        if any(b <= a for a, b in itertools.pairwise(sup)):
            raise ValueError(f"expected a strictly increasing support, got {sup}")
        object.__setattr__(self, "support", sup)
        prior = self.prior
        if prior is None:
            prior = tuple(1.0 / len(sup) for _ in sup)
        prior = tuple(prior)
        if len(prior) != len(sup) or not all(_is_real(p) and float(p) >= 0 for p in prior):
            raise ValueError(
                f"expected prior as {len(sup)} non-negative floats, got {self.prior!r}"
            )
        if abs(sum(float(p) for p in prior) - 1.0) > 1e-9:
            raise ValueError(f"expected prior summing to 1, got {sum(float(p) for p in prior)}")
        object.__setattr__(self, "prior", tuple(float(p) for p in prior))
        if self.types == "continuous":
            if not self.low < self.high:
                raise ValueError(f"expected low < high, got low={self.low}, high={self.high}")
            if not self.low <= self.prior_mean <= self.high:
                raise ValueError(
                    f"expected prior_mean in [{self.low}, {self.high}], got {self.prior_mean}"
                )
            if self.prior_std < 0 or self.sigma_no < 0:
                raise ValueError(
                    f"expected prior_std >= 0 and sigma_no >= 0, got {self.prior_std} and "
                    f"{self.sigma_no}"
                )

    # ------------------------------------------------------------------ derived

    @property
    def discrete(self) -> bool:
        """Whether the type space is the finite support."""
        return self.types == "discrete"

    @property
    def bounds(self) -> tuple[float, float]:
        """The value range: ``(min V, max V)`` (discrete) or ``(low, high)`` (continuous)."""
        if self.discrete:
            return self.support[0], self.support[-1]
        return self.low, self.high

    @property
    def n_reports(self) -> int:
        """Number of report vectors of one buyer, ``|V|^m`` (0 for continuous types)."""
        return len(self.support) ** self.n_goods if self.discrete else 0

    def cost_tensor(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """The costs ``c``, shape (n, m)."""
        return torch.tensor(self.costs, dtype=dtype, device=device)

    def support_tensor(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """The discrete support ``V``, shape (K,)."""
        return torch.tensor(self.support, dtype=dtype, device=device)

    def report_grid(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """Every report vector of one buyer (discrete types), in the categorical head's order.

        Report index ``k`` has good 0 as its most significant base-``|V|`` digit.

        Returns
        -------
        Tensor, shape (|V|^m, m)

        Raises
        ------
        ValueError
            For continuous types.

        Examples
        --------
        >>> BanditAuctionSetting(n_goods=2).report_grid()[:4].tolist()
        [[1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [2.0, 1.0]]
        """
        if not self.discrete:
            raise ValueError("expected a discrete setting for report_grid, got continuous types")
        K, m = len(self.support), self.n_goods
        idx = torch.arange(K**m, device=device)
        digits = torch.stack([(idx // K ** (m - 1 - j)) % K for j in range(m)], dim=1)
        return self.support_tensor(dtype=dtype, device=device)[digits]

    # ------------------------------------------------------------------ sampling

    def initial_values(
        self,
        salt: Salt,
        rows: Tensor,
        *,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """Initial values of the given rows' streams (see :mod:`bilevel.models.dynamic._random`).

        Parameters
        ----------
        salt : tuple of two int
        rows : Tensor, shape (E,), int64
            Row indices; row ``r``'s values depend on ``(salt, r)`` only.
        dtype : torch.dtype, optional

        Returns
        -------
        Tensor, shape (E, n, m), on ``rows``' device
        """
        E, n, m = int(rows.shape[0]), self.n_buyers, self.n_goods
        dev = rows.device
        if self.discrete:
            u = uniforms(salt, 0, rows, n * m).reshape(E, n, m)
            cdf = torch.cumsum(torch.tensor(self.prior, dtype=torch.float64, device=dev), 0)
            idx = (u.unsqueeze(-1) >= cdf[:-1]).sum(-1)
            return self.support_tensor(dtype=dtype, device=dev)[idx]
        z = normals(salt, 0, rows, n * m).reshape(E, n, m)
        v = (self.prior_mean + self.prior_std * z).clamp(self.low, self.high)
        return v.to(dtype)

    def sample(
        self,
        num: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """Draw ``num`` initial value profiles ``v_0``.

        The first ``k`` rows of a draw of ``num >= k`` rows equal a draw of ``k`` rows with the
        same seed.

        Parameters
        ----------
        num : int
        generator : torch.Generator
            The only source of randomness (one salt is drawn from it).
        dtype : torch.dtype, optional

        Returns
        -------
        Tensor, shape (num, n, m), on the generator's device

        Examples
        --------
        >>> s = BanditAuctionSetting(n_buyers=2)
        >>> a = s.sample(64, torch.Generator().manual_seed(0))
        >>> b = s.sample(8, torch.Generator().manual_seed(0))
        >>> bool(torch.equal(a[:8], b))
        True
        """
        if not _is_int(num) or num < 0:
            raise ValueError(f"expected num as an int >= 0, got {num!r}")
        salt = draw_salt(generator)
        rows = torch.arange(num, dtype=torch.int64, device=generator.device)
        return self.initial_values(salt, rows, dtype=dtype)
