"""Mechanism-design environments: an MDP structure plus agents with private types.

An :class:`Environment` couples a :class:`~bilevel.models.TabularMDP` with

* a type distribution (``sample_types(rng, k)`` → array of shape ``(k, *type_shape)``),
* per-agent rewards as a function of types (``rewards(types)`` → ``(k, n, S, A)``),
* the counterfactual types used for payments (``counterfactual(types, i)``: agent ``i``'s
  report replaced by the "absent" report of the environment, e.g. values set to 0),
* optional linear per-profile cost coefficients such as the makespan (``costs[name](types)``
  → ``(k, S, A)``; the cost of a profile under occupancy ``x`` is ``sum(x * coef)``).

Environments never see solvers or mechanisms; they are data plus samplers.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import FrameType, MappingProxyType
from typing import Any

import numpy as np
import scipy.sparse as sp

from bilevel.models._mdp import TabularMDP
from bilevel.models._single_parameter import SingleParameter
from bilevel.models.typing import FloatArray

__all__ = ["Environment", "check_count", "custom_env"]

Sampler = Callable[[np.random.Generator, int], FloatArray]
RewardFn = Callable[[FloatArray], FloatArray]
CounterfactualFn = Callable[[FloatArray, int], FloatArray]
CostFn = Callable[[FloatArray], FloatArray]


def _rebuild(factory: Any, name: str, kwargs: dict[str, Any]) -> Any:
    return factory(name, **kwargs)


def _from_fields(cls: Any, state: dict[str, Any]) -> Any:
    return cls(**state)


def _function_pickler() -> bool:
    """Whether a cloudpickle pickler (Dask's fallback, which pickles lambdas) is calling."""
    cloudpickle = sys.modules.get("cloudpickle")
    frame: FrameType | None = sys._getframe(2)
    while cloudpickle is not None and frame is not None:
        if isinstance(frame.f_locals.get("self"), cloudpickle.Pickler):
            return True
        frame = frame.f_back
    return False


def _check_picklable(name: str, state: dict[str, Any]) -> None:
    """Refuse, with the fix, an environment whose callables cannot reach worker processes."""
    callables = {k: state[k] for k in ("sampler", "reward_fn", "counterfactual_fn")}
    callables.update({f"costs[{k!r}]": v for k, v in state["costs"].items()})
    for what, fn in callables.items():
        try:
            pickle.dumps(fn)
        except Exception as e:
            raise pickle.PicklingError(
                f"expected environment {name!r} to be sendable to worker processes, got its "
                f"{what} {getattr(fn, '__qualname__', type(fn).__name__)!r}, which cannot be "
                f"pickled ({type(e).__name__}); build it with a module-level factory through "
                "make_env('package.module:function', **kwargs) (workers rebuild it from that "
                "recipe), use module-level functions instead of lambdas or local functions, or "
                "run with one worker"
            ) from None


@dataclass(frozen=True, eq=False)
class Environment:
    """A dynamic mechanism-design environment.

    Parameters
    ----------
    name : str
        Registry name (e.g. ``"sales"``).
    mdp : TabularMDP
        The decision process the mechanism controls.
    n_agents : int
        Number of strategic agents n.
    dist : str
        Name of the type distribution (e.g. ``"uniform"``).
    type_shape : tuple of int
        Shape of one type profile (e.g. ``(n,)`` for values, ``(n, T)`` for cost matrices).
    sampler : callable ``(rng, k) -> ndarray of shape (k, *type_shape)``
        Draws k independent type profiles.
    reward_fn : callable ``(types) -> ndarray of shape (k, n, S, A)``
        Per-agent rewards ``r_i(s, a; types)``.
    counterfactual_fn : callable ``(types, i) -> ndarray of shape (k, *type_shape)``
        Types with agent ``i`` (0-based) replaced by its counterfactual ("absent") report.
    objective : str, default "revenue"
        The design objective the environment is usually optimised for (``"revenue"``,
        ``"makespan"``, ``"welfare"`` or a key of ``costs``).
    costs : mapping of str to callable ``(types) -> ndarray of shape (k, S, A)``, optional
        Linear per-profile costs (e.g. ``"makespan"``); lower is better.
    boost_box : tuple of float, optional
        ``(lo, hi)`` box for each boost in grid search (the authors' code's box; Curry et al.
        (2024) do not state one); ``None`` if the
        environment has no default box.
    optimise_weights : bool, default False
        Whether designers optimise agent weights by default (asymmetric distributions).
    nonnegative_rewards : bool, default True
        Whether every agent's reward is ≥ 0 for every type (then AMA payments are IR);
        :meth:`rewards` checks it on every profile it computes and raises otherwise.
    params : mapping, optional
        The constructor's parameters (for reports and saving).
    single_parameter : SingleParameter, optional
        Declares that rewards factor as ``r_i = v_i · q_i`` with scalar values (Myerson 1981);
        used by ``bilevel.optimal_mechanism`` and ``bilevel.objective_bound``. ``None`` for
        multi-parameter types.
    recipe : JSON-serialisable value, optional
        A user-given identity of the callables (sampler, rewards, counterfactual, costs), e.g.
        ``"my-auction/v2"`` or a dict of the parameters that build them; see :meth:`identity`.
    """

    name: str
    mdp: TabularMDP
    n_agents: int
    dist: str
    type_shape: tuple[int, ...]
    sampler: Sampler
    reward_fn: RewardFn
    counterfactual_fn: CounterfactualFn
    objective: str = "revenue"
    costs: Mapping[str, CostFn] = field(default_factory=dict)
    boost_box: tuple[float, float] | None = None
    optimise_weights: bool = False
    nonnegative_rewards: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    single_parameter: SingleParameter | None = None
    origin: tuple[str, Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    recipe: Any = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle registry-built environments as their recipe (samplers are closures).

        An environment made by :func:`bilevel.models.make_env` is rebuilt from its name and keyword
        arguments, so it can be sent to worker processes (process pools, Dask). Other
        environments pickle only if all their callables do.
        """
        if self.origin is not None:
            from bilevel.models._registry import make_env

            name, kwargs = self.origin
            return (_rebuild, (make_env, name, dict(kwargs)))
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["costs"] = dict(self.costs)
        state["params"] = dict(self.params)
        if not _function_pickler():
            _check_picklable(self.name, state)
        return (_from_fields, (type(self), state))

    def __post_init__(self) -> None:
        if isinstance(self.n_agents, bool) or not isinstance(self.n_agents, (int, np.integer)):
            raise TypeError(f"expected n_agents as an int, got {type(self.n_agents).__name__}")
        if self.n_agents < 1:
            raise ValueError(f"expected n_agents >= 1, got {self.n_agents}")
        if not isinstance(self.mdp, TabularMDP):
            raise TypeError(f"expected mdp as a TabularMDP, got {type(self.mdp).__name__}")
        if self.boost_box is not None and not (self.boost_box[0] < self.boost_box[1]):
            raise ValueError(f"expected boost_box (lo, hi) with lo < hi, got {self.boost_box}")
        object.__setattr__(self, "costs", MappingProxyType(dict(self.costs)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "type_shape", tuple(int(d) for d in self.type_shape))
        sp = self.single_parameter
        if sp is not None:
            if not isinstance(sp, SingleParameter):
                raise TypeError(
                    f"expected single_parameter as a SingleParameter, got {type(sp).__name__}"
                )
            if sp.n_agents != self.n_agents:
                raise ValueError(
                    f"expected single_parameter with {self.n_agents} value distributions (one "
                    f"per agent), got {sp.n_agents}"
                )

    # ------------------------------------------------------------------ shapes
    @property
    def n_states(self) -> int:
        """Number of MDP states S."""
        return self.mdp.n_states

    @property
    def n_actions(self) -> int:
        """Number of MDP actions A."""
        return self.mdp.n_actions

    # ------------------------------------------------------------------ identity
    def identity(self) -> str:
        """A content digest of the environment (20 hex characters), stable across processes.

        Two environments with the same identity produce the same designs and evaluations;
        checkpoints (:meth:`bilevel.AMADesigner.checkpoint_key`), experiment cells and saved
        mechanisms are keyed or checked by it. It covers the name, ``n_agents``, ``dist``,
        ``type_shape``, ``objective``, the names of ``costs``, ``params``, ``boost_box``,
        ``optimise_weights`` and ``nonnegative_rewards``, and

        * for an environment built by :func:`bilevel.models.make_env`: its registry recipe (name and
          constructor keywords, defaults filled in) — the constructor determines the rest;
        * otherwise: the MDP (states, actions, transition matrix, ``mu0``, ``gamma``) and, for
          the callables, the user-given ``recipe`` of :func:`custom_env` when there is one,
          else a fingerprint of their behaviour: the sampler's output for a fixed seed
          (8 profiles), the rewards, every agent's counterfactual types and every cost on
          those profiles (rounded to 9 decimals). Callables that agree on those profiles but
          differ elsewhere are not told apart: pass ``recipe=`` to distinguish them.

        Raises
        ------
        ValueError
            If the environment has no recipe and its sampler is not a function of the
            generator it is given (two draws with the same seed differ).
        """
        cached = self.__dict__.get("_identity")
        if isinstance(cached, str):
            return cached
        fields_: dict[str, Any] = {
            "name": self.name,
            "n_agents": int(self.n_agents),
            "dist": self.dist,
            "type_shape": list(self.type_shape),
            "objective": self.objective,
            "costs": sorted(self.costs),
            "params": dict(self.params),
            "boost_box": None if self.boost_box is None else list(self.boost_box),
            "optimise_weights": bool(self.optimise_weights),
            "nonnegative_rewards": bool(self.nonnegative_rewards),
        }
        if self.origin is not None:
            from bilevel.models._registry import ENVIRONMENTS

            name, kwargs = self.origin
            spec = ENVIRONMENTS.get(name)
            resolved = {**(spec.parameters if spec is not None else {}), **dict(kwargs)}
            fields_["registry"] = {"name": name, "kwargs": resolved}
        else:
            fields_["mdp"] = _mdp_digest(self.mdp)
            if self.recipe is not None:
                fields_["recipe"] = self.recipe
            else:
                fields_["fingerprint"] = self._fingerprint()
        blob = json.dumps(fields_, sort_keys=True, default=_jsonable, allow_nan=False)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
        object.__setattr__(self, "_identity", digest)
        return digest

    def _fingerprint(self) -> dict[str, str]:
        """Digests of the callables' outputs on fixed profiles (see :meth:`identity`)."""
        types = np.asarray(self.sampler(np.random.default_rng(_FINGERPRINT_SEED),
                                        _FINGERPRINT_PROFILES), dtype=np.float64)
        again = np.asarray(self.sampler(np.random.default_rng(_FINGERPRINT_SEED),
                                        _FINGERPRINT_PROFILES), dtype=np.float64)
        if types.shape != again.shape or not np.array_equal(types, again, equal_nan=True):
            raise ValueError(
                f"cannot identify environment {self.name!r}: its sampler is not a function of "
                "the generator it is given (two draws with the same seed differ); pass "
                "recipe=... to custom_env"
            )
        out = {"types": _array_digest(types),
               "rewards": _array_digest(self.reward_fn(types.copy()))}
        for i in range(self.n_agents):
            out[f"counterfactual{i}"] = _array_digest(self.counterfactual_fn(types.copy(), i))
        for name in sorted(self.costs):
            out[f"cost:{name}"] = _array_digest(self.costs[name](types.copy()))
        return out

    # ------------------------------------------------------------------ types
    def sample_types(self, rng: np.random.Generator | int | None, k: int) -> FloatArray:
        """Draw ``k`` independent type profiles.

        Parameters
        ----------
        rng : numpy.random.Generator or int or None
            Source of randomness (an int is used as a seed).
        k : int
            Number of profiles, ≥ 1.

        Returns
        -------
        ndarray of shape (k, *type_shape)
        """
        k = check_count(k, "k")
        gen = np.random.default_rng(rng)
        types = np.asarray(self.sampler(gen, k), dtype=np.float64)
        return self._check_types(types)

    def counterfactual(self, types: FloatArray, i: int) -> FloatArray:
        """Types with agent ``i`` (0-based) replaced by its counterfactual report.

        Parameters
        ----------
        types : ndarray of shape (k, *type_shape)
        i : int
            Agent index in ``0 .. n-1``.

        Returns
        -------
        ndarray of shape (k, *type_shape)
            A new array; ``types`` is not modified.
        """
        types = self._check_types(types)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not (
            0 <= i < self.n_agents
        ):
            raise ValueError(f"expected an agent index in [0, {self.n_agents}), got {i!r}")
        return np.asarray(self.counterfactual_fn(types.copy(), int(i)), dtype=np.float64)

    def rewards(self, types: FloatArray) -> FloatArray:
        """Per-agent rewards for each type profile.

        Parameters
        ----------
        types : ndarray of shape (k, *type_shape)

        Returns
        -------
        ndarray of shape (k, n, S, A)

        Raises
        ------
        ValueError
            If the types have the wrong shape or the rewards are not finite.
        """
        types = self._check_types(types)
        R = np.asarray(self.reward_fn(types), dtype=np.float64)
        expected = (types.shape[0], self.n_agents, self.n_states, self.n_actions)
        if R.shape != expected:
            raise ValueError(f"expected rewards of shape (k, n, S, A) = {expected}, got {R.shape}")
        if not np.all(np.isfinite(R)):
            raise ValueError("expected finite rewards, got NaN or inf")
        if self.nonnegative_rewards:
            mins = R.min(axis=(0, 2, 3))
            i = int(np.argmin(mins))
            if mins[i] < 0:
                raise ValueError(
                    f"expected non-negative rewards (nonnegative_rewards=True), got min "
                    f"{mins[i]:.6g} for agent {i}; pass nonnegative_rewards=False"
                )
        return R

    def cost(self, name: str, types: FloatArray) -> FloatArray:
        """Linear cost coefficients ``(k, S, A)`` of the named cost (e.g. ``"makespan"``)."""
        if name not in self.costs:
            raise ValueError(
                f"expected a cost of environment {self.name!r} (one of {sorted(self.costs)}), "
                f"got {name!r}"
            )
        types = self._check_types(types)
        C = np.asarray(self.costs[name](types), dtype=np.float64)
        expected = (types.shape[0], self.n_states, self.n_actions)
        if C.shape != expected:
            raise ValueError(f"expected {name} coefficients of shape {expected}, got {C.shape}")
        return C

    def _check_types(self, types: Any) -> FloatArray:
        arr = np.asarray(types, dtype=np.float64)
        if arr.ndim != len(self.type_shape) + 1 or arr.shape[1:] != self.type_shape:
            raise ValueError(
                f"expected types of shape (k, *type_shape) = (k, "
                f"{', '.join(map(str, self.type_shape))}), got {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError("expected at least one type profile (k >= 1), got k = 0")
        if not np.all(np.isfinite(arr)):
            raise ValueError("expected finite types, got NaN or inf")
        return arr

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Environment({self.name!r}, {ps}; S={self.n_states}, A={self.n_actions})"


_FINGERPRINT_SEED = 20240220
_FINGERPRINT_PROFILES = 8


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return _array_digest(x)
    if isinstance(x, (set, frozenset)):
        return sorted(map(repr, x))
    return repr(x)


def _array_digest(a: Any) -> str:
    """Digest of an array's shape and values (rounded to 9 decimals; -0 is 0)."""
    arr = np.ascontiguousarray(np.round(np.asarray(a, dtype=np.float64), 9) + 0.0)
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _mdp_digest(mdp: TabularMDP) -> str:
    """Digest of an MDP's states, actions, transitions, initial distribution and discount."""
    P = sp.csr_array(mdp.P, copy=True)
    P.sum_duplicates()
    P.sort_indices()
    h = hashlib.sha256(repr((list(map(repr, mdp.states)), list(mdp.actions), P.shape,
                             float(mdp.gamma))).encode())
    for part in (P.indptr.astype(np.int64), P.indices.astype(np.int64),
                 np.asarray(P.data, dtype=np.float64), np.asarray(mdp.mu0, dtype=np.float64)):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def _zero_agent(types: FloatArray, i: int) -> FloatArray:
    """The default counterfactual of :func:`custom_env` (module level: it pickles)."""
    types[:, i] = 0.0
    return types


def check_count(k: Any, name: str) -> int:
    """Return ``k`` as an int after checking it is a positive count (one-line error otherwise)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"expected {name} as an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"expected {name} >= 1, got {k}")
    return int(k)


def custom_env(
    mdp: TabularMDP,
    *,
    n_agents: int,
    sampler: Sampler,
    reward_fn: RewardFn,
    type_shape: tuple[int, ...],
    counterfactual_fn: CounterfactualFn | None = None,
    name: str = "custom",
    dist: str = "custom",
    objective: str = "revenue",
    costs: Mapping[str, CostFn] | None = None,
    boost_box: tuple[float, float] | None = None,
    nonnegative_rewards: bool = True,
    single_parameter: SingleParameter | None = None,
    recipe: Any = None,
) -> Environment:
    """Build an environment for a user-defined MDP.

    Parameters
    ----------
    mdp : TabularMDP
        Structure, e.g. from :func:`bilevel.models.mdp_from_arrays` or
        :func:`bilevel.models.mdp_from_successors`.
    n_agents : int
        Number of agents n.
    sampler : callable ``(rng, k) -> ndarray of shape (k, *type_shape)``
        Type sampler.
    reward_fn : callable ``(types) -> ndarray of shape (k, n, S, A)``
        Per-agent rewards as a function of sampled types.
    type_shape : tuple of int
        Shape of one type profile.
    counterfactual_fn : callable ``(types, i) -> ndarray``, optional
        Agent i's "absent" report. Defaults to zeroing agent i's slice ``types[:, i]`` (requires
        the agent to be the first type axis and rewards linear in its own type).
    name, dist, objective, costs, boost_box, nonnegative_rewards
        See :class:`Environment`.
    single_parameter : SingleParameter, optional
        Scalar values times type-independent quantities (see :class:`Environment`); check it
        with :func:`bilevel.models.check_single_parameter`.
    recipe : JSON-serialisable value, optional
        What identifies the callables (a name and version, the parameters that build them):
        checkpoints and saved mechanisms are keyed by it (see :meth:`Environment.identity`).
        Without it they are keyed by a fingerprint of the callables' outputs on fixed
        profiles.

    Returns
    -------
    Environment

    Examples
    --------
    >>> import numpy as np
    >>> from bilevel.models import mdp_from_arrays
    >>> P = np.zeros((1, 2, 1))  # one state, two actions, the flow leaves: a static auction
    >>> def rewards(v):  # action a gives the item to agent a
    ...     R = np.zeros((v.shape[0], 2, 1, 2)); R[:, 0, 0, 0] = v[:, 0]; R[:, 1, 0, 1] = v[:, 1]
    ...     return R
    >>> env = custom_env(mdp_from_arrays(P, [1.0], 1.0), n_agents=2, type_shape=(2,),
    ...                  sampler=lambda rng, k: rng.uniform(size=(k, 2)), reward_fn=rewards)
    >>> env.rewards(env.sample_types(0, 3)).shape
    (3, 2, 1, 2)
    """

    return Environment(
        name=name,
        mdp=mdp,
        n_agents=n_agents,
        dist=dist,
        type_shape=type_shape,
        sampler=sampler,
        reward_fn=reward_fn,
        counterfactual_fn=counterfactual_fn or _zero_agent,
        objective=objective,
        costs=costs or {},
        boost_box=boost_box,
        nonnegative_rewards=nonnegative_rewards,
        params={"n_agents": n_agents},
        single_parameter=single_parameter,
        recipe=recipe,
    )
