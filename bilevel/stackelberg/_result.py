"""``StackelbergResult``: what :meth:`StackelbergDesigner.fit` returns, saved and loaded.

:meth:`StackelbergResult.save` writes ``result.json`` (strict JSON) and the network's
``policy.pt``; :func:`load_stackelberg` reads them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bilevel._contract import RunStatus
from bilevel._jsonsafe import to_json
from bilevel.solvers.rl import ActorCritic

__all__ = ["StackelbergResult", "load_stackelberg"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StackelbergResult:
    """Outcome of :meth:`StackelbergDesigner.fit`.

    Attributes
    ----------
    game : str
        Game name.
    config : dict
        The designer's hyperparameters (resolved defaults included).
    value : float
        Exact leader value of the returned leader against its certified follower response
        (per game; welfare loss for MSPM). The returned leader is the best certified snapshot:
        the exactly evaluated deterministic leader (every ``eval_every`` updates and at the
        end) with the highest value among those whose response is certified, the final one if
        none is — as :class:`bilevel.SPMDesigner` returns its best evaluated snapshot. With
        ``objective="worst-certified"`` snapshots are ranked by their worst certified value
        (``worst_value``), the quantity trained for.
    bcce_gap : float
        B-CCE gap of that response.
    certified : bool
        ``bcce_gap <= threshold``.
    response_kind : str
        The selected response kind.
    leader_table : tuple of ndarray
        The returned leader as a tabular policy (``game.payoffs`` arguments).
    best_value : float
        Exact value of the selected snapshot (equals ``value``; kept for saved results).
    best_table : tuple of ndarray
        The tabular leader attaining ``best_value``.
    optimum : float or None
        Known optimum of the game (Brero et al. 2022, *Stackelberg POMDP*, §5.1 and App. G-H).
    curve_steps, curve_objective : ndarray of shape (U,)
        Training curve: mean episode objective of the stochastic leader per PPO update.
    eval_steps, eval_values, eval_gaps : ndarray of shape (V,)
        Exact evaluations of the deterministic leader during training.
    env_steps : int
        Leader-environment steps taken.
    wall_time : float
        Seconds of training and evaluation.
    steps_per_second : float
        Training throughput (environment steps per second).
    message : str
        Why training stopped.
    policy : ActorCritic or None
        The returned network (the best certified snapshot; None when loaded without it).
    final_value : float or None
        Exact value of the leader at the end of training (None: same as ``value``).
    worst_value : float or None
        With ``objective="worst-certified"``: the returned leader's value against its worst
        certified response (:func:`worst_certified_value`); else None.
    status : RunStatus
        Why training stopped, as a code: ``completed``, ``time_limit`` (``max_seconds``).
    nit : int
        PPO updates.

    With ``success`` (True: a fit that returns has not failed) and ``stats``, the outer-result
    vocabulary of every designer.
    """

    game: str
    config: dict[str, Any]
    value: float
    bcce_gap: float
    certified: bool
    response_kind: str
    leader_table: tuple[Any, ...]
    best_value: float
    best_table: tuple[Any, ...]
    optimum: float | None
    curve_steps: FloatArray
    curve_objective: FloatArray
    eval_steps: FloatArray
    eval_values: FloatArray
    eval_gaps: FloatArray
    env_steps: int
    wall_time: float
    steps_per_second: float
    message: str
    policy: ActorCritic | None = field(default=None, repr=False, compare=False)
    final_value: float | None = None
    worst_value: float | None = None
    status: RunStatus = RunStatus.COMPLETED
    nit: int = 0

    @property
    def success(self) -> bool:
        """True: a fit that returns has not failed."""
        return True

    @property
    def stats(self) -> dict[str, Any]:
        """Training figures."""
        return {"env_steps": self.env_steps, "steps_per_second": self.steps_per_second,
                "bcce_gap": self.bcce_gap, "certified": self.certified}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (everything but the network)."""
        def tab(t: tuple[Any, ...]) -> list[Any]:
            return [np.asarray(a).tolist() for a in t]
        return {
            "game": self.game, "config": self.config, "value": self.value,
            "bcce_gap": self.bcce_gap, "certified": self.certified,
            "response_kind": self.response_kind, "leader_table": tab(self.leader_table),
            "best_value": self.best_value, "best_table": tab(self.best_table),
            "optimum": self.optimum,
            "curve_steps": self.curve_steps.tolist(),
            "curve_objective": self.curve_objective.tolist(),
            "eval_steps": self.eval_steps.tolist(), "eval_values": self.eval_values.tolist(),
            "eval_gaps": self.eval_gaps.tolist(), "env_steps": self.env_steps,
            "wall_time": self.wall_time, "steps_per_second": self.steps_per_second,
            "message": self.message,
            "final_value": self.value if self.final_value is None else self.final_value,
            "worst_value": self.worst_value,
            "status": str(self.status), "nit": self.nit,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``result.json`` and (if present) ``policy.pt`` into ``directory``.

        Returns
        -------
        pathlib.Path
            The directory.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(to_json(self.to_dict(), indent=1))
        if self.policy is not None:
            self.policy.save(d / "policy.pt")
        return d


def load_stackelberg(directory: str | Path) -> StackelbergResult:
    """Load a result written by :meth:`StackelbergResult.save`.

    Raises
    ------
    ValueError
        If the directory holds no ``result.json`` of a Stackelberg result.
    """
    d = Path(directory)
    f = d / "result.json"
    if not f.is_file():
        raise ValueError(f"expected a directory with result.json, got {str(d)!r}")
    try:
        r = json.loads(f.read_text())
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError (e.g. a pickle)
        raise ValueError(
            f"expected a saved StackelbergResult (result.json), got {str(f)!r}, which is not "
            f"JSON ({' '.join(str(e).split())[:200]})"
        ) from None
    if not isinstance(r, dict) or "leader_table" not in r or "game" not in r:
        raise ValueError(f"expected a saved StackelbergResult, got {str(f)!r}")
    policy = ActorCritic.load(d / "policy.pt") if (d / "policy.pt").is_file() else None

    def arr(k: str) -> FloatArray:
        return np.asarray(r[k], dtype=np.float64)  # null (a non-finite float) reads as NaN

    def num(k: str) -> float:
        return float("nan") if r[k] is None else float(r[k])
    return StackelbergResult(
        game=r["game"], config=r["config"], value=num("value"),
        bcce_gap=num("bcce_gap"), certified=bool(r["certified"]),
        response_kind=r["response_kind"],
        leader_table=tuple(np.asarray(a) for a in r["leader_table"]),
        best_value=num("best_value"),
        best_table=tuple(np.asarray(a) for a in r["best_table"]),
        optimum=r["optimum"], curve_steps=arr("curve_steps"),
        curve_objective=arr("curve_objective"), eval_steps=arr("eval_steps"),
        eval_values=arr("eval_values"), eval_gaps=arr("eval_gaps"),
        env_steps=int(r["env_steps"]), wall_time=num("wall_time"),
        steps_per_second=num("steps_per_second"), message=r["message"], policy=policy,
        final_value=num("final_value" if "final_value" in r else "value"),
        worst_value=None if r.get("worst_value") is None else float(r["worst_value"]),
        status=RunStatus(r.get("status", "completed")), nit=int(r.get("nit", 0)),
    )
