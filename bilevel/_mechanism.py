"""Affine maximizer mechanisms (AMAs) on MDPs: allocation, payments, saving and loading.

An AMA with weights ``w > 0`` (one per agent) and boosts ``b`` (one per state–action pair)
allocates by solving the MDP for the affine welfare ``c = sum_i w_i r_i + b`` and charges agent
``i``

    p_i = (1 / w_i) * [asw^(-i) - (asw - w_i r_i(x*))],

where ``asw`` is the optimal affine welfare for the reports and ``asw^(-i)`` the optimal affine
welfare when agent i's report is replaced by its counterfactual ("absent") report (Curry et al.,
AAAI 2024, §3). With exact inner solves the mechanism is dominant-strategy incentive compatible
for any ``w > 0`` and ``b``; VCG is ``w = 1, b = 0``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bilevel._jsonsafe import to_json
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["AMA", "env_meta", "load_mechanism", "vcg"]

_FORMAT = "bilevel.ama/1"


@dataclass(frozen=True, eq=False)
class AMA:
    """An affine maximizer mechanism.

    Parameters
    ----------
    weights : array_like of shape (n,)
        Agent weights, all > 0 and finite.
    boosts : array_like of shape (S, A)
        State–action boosts, finite.
    name : str, default "ama"
        Label used in reports.
    meta : dict, optional
        Free-form provenance (environment, method, seed...), saved with the mechanism. Its
        ``"env_identity"`` (:meth:`bilevel.models.Environment.identity`, set by :func:`env_meta` for
        designed mechanisms and VCG) makes :func:`bilevel.evaluate` refuse other environments.

    Raises
    ------
    ValueError
        If a weight is ≤ 0 or an entry is not finite, or ``boosts`` is not 2-d.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=2, n_items=2)
    >>> AMA([1.0, 2.0], np.zeros(env.mdp.shape)).weights
    array([1., 2.])
    """

    weights: FloatArray
    boosts: FloatArray
    name: str = "ama"
    meta: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        weights: ArrayLike,
        boosts: ArrayLike,
        name: str = "ama",
        meta: dict[str, Any] | None = None,
    ) -> None:
        w = np.array(weights, dtype=np.float64)
        b = np.array(boosts, dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"expected weights of shape (n,) with n >= 1, got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"expected weights w > 0 and finite, got {w.tolist()}")
        if b.ndim != 2:
            raise ValueError(f"expected boosts of shape (S, A), got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError("expected finite boosts, got NaN or inf")
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "boosts", b)
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "meta", dict(meta or {}))

    @property
    def n_agents(self) -> int:
        """Number of agents n."""
        return int(self.weights.size)

    @property
    def is_vcg(self) -> bool:
        """Whether this is the VCG mechanism up to scaling (equal weights, zero boosts)."""
        return bool(np.allclose(self.weights, self.weights[0]) and not self.boosts.any())

    def check_compatible(self, env: Environment) -> None:
        """Raise ``ValueError`` unless the mechanism's shapes fit ``env``.

        Parameters
        ----------
        env : Environment
            Needs ``n`` agents (one weight each) and an MDP of shape (S, A) (the boosts').

        Raises
        ------
        ValueError
            For another number of agents or another (S, A).

        Examples
        --------
        >>> from bilevel.models import make_env
        >>> env = make_env("sales", n_agents=2, n_items=2)
        >>> AMA([1.0, 1.0], np.zeros(env.mdp.shape)).check_compatible(env)
        >>> AMA([1.0, 1.0, 1.0], np.zeros(env.mdp.shape)).check_compatible(env)
        Traceback (most recent call last):
        ...
        ValueError: expected a mechanism for 2 agents, got weights for 3
        """
        if self.n_agents != env.n_agents:
            raise ValueError(
                f"expected a mechanism for {env.n_agents} agents, got weights for {self.n_agents}"
            )
        if self.boosts.shape != env.mdp.shape:
            raise ValueError(
                f"boosts must have shape (S, A) = {env.mdp.shape} for {env!r}, "
                f"got {self.boosts.shape}"
            )

    def check_env(self, env: Environment) -> None:
        """Deprecated alias of :meth:`check_compatible` (removed in the next release).

        ``bilevel.models.check_env`` is the conformance checker of environments; this method
        only checks that a mechanism's shapes fit one.
        """
        warnings.warn(
            "AMA.check_env is deprecated and will be removed in the next release; use "
            "AMA.check_compatible",
            DeprecationWarning,
            stacklevel=2,
        )
        self.check_compatible(env)

    def check_origin(self, env: Environment, *, allow_transfer: bool = False) -> None:
        """Raise ``ValueError`` unless the mechanism fits ``env`` and was designed for it.

        The shapes are checked as by :meth:`check_compatible`. A mechanism whose ``meta`` holds the
        identity of the environment it was designed for (``"env_identity"``) is refused for an
        environment with another identity unless ``allow_transfer``; mechanisms without one
        (older files, hand-built AMAs) are checked by shape only.
        """
        self.check_compatible(env)
        designed = self.meta.get("env_identity")
        if allow_transfer or designed is None:
            return
        try:
            got: str | None = env.identity()
        except ValueError:
            got = None
        if got == designed:
            return
        was = _env_label(self.meta.get("env", "?"), self.meta.get("params") or {})
        now = _env_label(env.name, env.params)
        if was == now:
            was, now = f"{was} [identity {designed}]", f"{now} [identity {got}]"
        raise ValueError(
            f"mechanism designed for {was}, got {now}; pass allow_transfer=True / "
            "--allow-transfer to evaluate it anyway"
        )

    def affine_welfare(self, rewards: FloatArray) -> FloatArray:
        """``sum_i w_i r_i + b`` for rewards of shape (..., n, S, A); returns (..., S, A)."""
        out: FloatArray = np.einsum("n,...nsa->...sa", self.weights, rewards) + self.boosts
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable representation."""
        return {
            "format": _FORMAT,
            "name": self.name,
            "weights": self.weights.tolist(),
            "boosts": self.boosts.tolist(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AMA:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"expected a mechanism with format {_FORMAT!r}, got {got!r}")
        return cls(data["weights"], data["boosts"], data.get("name", "ama"), data.get("meta"))

    def save(self, path: str | Path) -> Path:
        """Save as JSON (``.json``) or numpy archive (``.npz``); never pickle.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        from bilevel._outdir import atomic_write, atomic_write_text

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        # atomic (temporary file + rename): an interrupted save leaves the old file intact
        if p.suffix == ".json":
            atomic_write_text(p, to_json(self.to_dict(), indent=2))
        elif p.suffix == ".npz":
            meta = np.array(to_json(self.meta))

            def write(f: Any) -> None:
                np.savez(f, format=np.array(_FORMAT), name=np.array(self.name),
                         weights=self.weights, boosts=self.boosts, meta=meta)

            atomic_write(p, write)
        else:
            raise ValueError(f"expected a path ending in .json or .npz, got {str(p)!r}")
        return p

    def __repr__(self) -> str:
        return (
            f"AMA(name={self.name!r}, weights={np.array2string(self.weights, precision=4)}, "
            f"boosts shape={self.boosts.shape}, |b|max={np.abs(self.boosts).max():.4g})"
        )


def load_mechanism(path: str | Path) -> AMA:
    """Load a mechanism saved by :meth:`AMA.save` (``.json`` or ``.npz``).

    Raises
    ------
    ValueError
        If the file is not a saved mechanism.
    FileNotFoundError
        If the file does not exist.
    """
    p = Path(path)
    if p.suffix not in (".json", ".npz"):
        raise ValueError(f"expected a path ending in .json or .npz, got {str(p)!r}")
    if p.is_dir():
        raise ValueError(f"expected a saved mechanism file, got the directory {str(p)!r}")
    if p.suffix == ".json":
        try:
            data = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise ValueError(
                f"expected a bilevel mechanism (.json written by AMA.save), got {str(p)!r}, "
                f"which is not JSON ({e})"
            ) from None
        return _mechanism_from_data(data, p)
    try:
        with p.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            files = set(z.files)
            keys = ("format", "name", "weights", "boosts", "meta")
            arrays = {k: z[k] for k in keys if k in files}
    except FileNotFoundError:
        raise
    except Exception:  # garbage, truncated or pickled: never suggest allow_pickle
        raise ValueError(
            "expected a bilevel mechanism archive (.npz written by AMA.save), got a file numpy "
            f"cannot read: {str(p)!r}"
        ) from None
    missing = {"format", "name", "weights", "boosts", "meta"} - files
    if missing:
        raise ValueError(
            f"expected a mechanism archive with format {_FORMAT!r}, got an .npz "
            f"without {sorted(missing)}"
        )
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError:
        raise ValueError(
            f"expected a mechanism archive with JSON metadata, got {str(p)!r} with unreadable "
            "'meta'"
        ) from None
    return _mechanism_from_data({"format": str(arrays["format"]), "name": str(arrays["name"]),
                                 "weights": arrays["weights"], "boosts": arrays["boosts"],
                                 "meta": meta}, p)


def _mechanism_from_data(data: Any, p: Path) -> AMA:
    """:meth:`AMA.from_dict` with missing keys and malformed values named in one line."""
    if isinstance(data, dict) and data.get("format") == _FORMAT:
        missing = sorted({"weights", "boosts"} - set(data))
        if missing:
            raise ValueError(
                f"expected a mechanism with 'weights' and 'boosts', got {str(p)!r} without "
                f"{missing}"
            )
    try:
        return AMA.from_dict(data)
    except (TypeError, KeyError) as e:
        raise ValueError(f"expected a saved mechanism, got a malformed {str(p)!r} ({e})") from None


def vcg(env: Environment) -> AMA:
    """The VCG mechanism of ``env``: ``w = 1``, ``b = 0``."""
    return AMA(
        np.ones(env.n_agents),
        np.zeros(env.mdp.shape),
        name="vcg",
        meta=env_meta(env),
    )


def env_meta(env: Environment) -> dict[str, Any]:
    """Provenance of a mechanism designed for ``env``: its name, parameters and identity
    (``"env_identity"``, omitted when the environment cannot be identified)."""
    meta: dict[str, Any] = {"env": env.name, "params": dict(env.params)}
    with contextlib.suppress(ValueError):  # not identifiable: no identity, shape checks only
        meta["env_identity"] = env.identity()
    return meta


def _env_label(name: Any, params: Any) -> str:
    items = params.items() if isinstance(params, Mapping) else []
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in items)})"
