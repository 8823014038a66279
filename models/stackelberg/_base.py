"""The common shape of every Stackelberg game: followers, finite types and actions, priors.

A Stackelberg game here is a Bayesian game among ``n`` followers whose payoffs depend on a
leader's committed policy. Follower ``i`` has ``T_i`` private types drawn independently from a
prior ``p_i`` and ``A_i`` actions (messages). Everything that the exact evaluators and the
follower dynamics of :mod:`bilevel.solvers` need is the *payoff table* of a leader policy: for every
type profile ``k`` and joint action ``j``, the followers' utilities ``(n,)`` and the leader's
reward. Each game builds that table from its own tabular leader policy (``game.payoffs(...)``).

Type profiles and joint actions are indexed in mixed radix with the **first follower most
significant** (numpy C order): profile ``k`` of types ``(t_1, ..., t_n)`` is
``np.ravel_multi_index(t, n_types)``, and likewise for joint actions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from bilevel.models.typing import FloatArray, IntArray

if TYPE_CHECKING:  # torch is imported by the one method that needs it (fast start)
    import torch

__all__ = ["StackelbergGame"]


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` ("expected ..., got ..." errors)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"expected {name} as an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return int(value)


def check_prior(p: Any, name: str) -> FloatArray:
    """Return ``p`` as a float64 probability vector with positive entries summing to 1."""
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"expected {name} as a non-empty vector, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0) or abs(float(a.sum()) - 1.0) > 1e-12:
        raise ValueError(
            f"expected {name} to be a probability vector with positive entries, got {a.tolist()}"
        )
    a = a.copy()
    a.setflags(write=False)
    return a


def check_array(x: Any, name: str, shape: tuple[int, ...], dtype: type) -> Any:
    """Return ``x`` as an array of ``dtype`` whose trailing axes equal ``shape``."""
    if dtype is np.int64:
        a = np.asarray(x)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"expected {name} as integers, got dtype {a.dtype}")
        a = a.astype(np.int64)
    else:
        a = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"expected finite {name}, got non-finite entries")
    if a.ndim < len(shape) or tuple(a.shape[a.ndim - len(shape) :]) != shape:
        raise ValueError(f"expected {name} of shape (..., {', '.join(map(str, shape))})"
                         f", got {a.shape}")
    return a


def frozen(a: Any) -> FloatArray:
    """A read-only float64 copy of ``a``."""
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out


class StackelbergGame(ABC):
    """Base class of the Stackelberg games (frozen dataclasses in the subclasses).

    Attributes
    ----------
    name : str
        Registry-style name, e.g. ``"normal_form:game_2:randomized"``.
    priors : tuple of ndarray, each shape (T_i,)
        Independent type prior of each follower (positive entries).
    n_actions : tuple of int
        Number of actions (messages) ``A_i`` of each follower.
    optimum : float or None
        Best known leader value per game in the game's units, if known (each game's
        docstring says where it comes from).
    """

    name: str
    priors: tuple[FloatArray, ...]
    n_actions: tuple[int, ...]
    optimum: float | None
    #: ``payoffs(*policy) -> (follower (..., K, J, n), leader (..., K, J))``: the exact payoff
    #: table of a tabular leader policy (each game documents its policy arguments).
    payoffs: Callable[..., tuple[FloatArray, FloatArray]]

    @property
    def n_followers(self) -> int:
        """Number of followers ``n``."""
        return len(self.n_actions)

    @property
    def n_types(self) -> tuple[int, ...]:
        """Number of types ``T_i`` of each follower."""
        return tuple(int(p.size) for p in self.priors)

    @property
    def n_profiles(self) -> int:
        """Number of type profiles ``K = prod_i T_i``."""
        return int(np.prod(self.n_types))

    @property
    def n_joint_actions(self) -> int:
        """Number of joint actions ``J = prod_i A_i``."""
        return int(np.prod(self.n_actions))

    def type_profiles(self) -> tuple[IntArray, FloatArray]:
        """Enumerate the support of the type prior.

        Returns
        -------
        profiles : ndarray of shape (K, n), int64
            Every type profile, first follower most significant.
        probs : ndarray of shape (K,), float64
            Their probabilities (products of the independent priors); they sum to 1.
        """
        profiles = _grid(self.n_types)
        probs = np.ones(profiles.shape[0])
        for i, p in enumerate(self.priors):
            probs = probs * p[profiles[:, i]]
        return profiles, probs

    def joint_actions(self) -> IntArray:
        """Every joint action, shape (J, n), int64, first follower most significant."""
        return _grid(self.n_actions)

    @overload
    def sample_types(self, generator: np.random.Generator, size: int) -> IntArray: ...

    @overload
    def sample_types(self, generator: torch.Generator, size: int) -> torch.Tensor: ...

    def sample_types(
        self, generator: np.random.Generator | torch.Generator, size: int
    ) -> IntArray | torch.Tensor:
        """Draw ``size`` type profiles from the prior.

        Parameters
        ----------
        generator : numpy.random.Generator or torch.Generator
            Source of randomness; the result has the matching array type.
        size : int
            Number of profiles.

        Returns
        -------
        ndarray or Tensor of shape (size, n), int64
        """
        size = check_int(size, "size", 0)
        if isinstance(generator, np.random.Generator):
            cols = [generator.choice(p.size, size=size, p=p) for p in self.priors]
            return np.stack(cols, axis=1).astype(np.int64).reshape(size, self.n_followers)
        import torch

        if isinstance(generator, torch.Generator):
            out = torch.empty(size, self.n_followers, dtype=torch.int64)
            for i, p in enumerate(self.priors):
                if size:
                    out[:, i] = torch.multinomial(
                        torch.tensor(p), size, replacement=True, generator=generator
                    )
            return out
        raise TypeError(
            "expected a numpy.random.Generator or a torch.Generator, "
            f"got {type(generator).__name__}"
        )

    @abstractmethod
    def describe(self) -> str:
        """One line describing the game."""


def _grid(counts: tuple[int, ...]) -> IntArray:
    """All index tuples of ``counts`` in C order, shape (prod counts, len(counts))."""
    idx = np.indices(counts).reshape(len(counts), -1).T
    return np.ascontiguousarray(idx, dtype=np.int64)
