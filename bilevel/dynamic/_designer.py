"""``DynamicMechanismDesigner``: learn a dynamic mechanism min–max against learned deviators.

For a bandit auction (:mod:`bilevel.models.dynamic`) the designer trains a
:class:`~bilevel.solvers.dynamic.MechanismNet` (reports only, attention over past reports) with
:class:`~bilevel.solvers.dynamic.MinMaxTrainer` — the mechanism minimises
``|revenue − δ| + α ψ̂ + β · IR loss`` while truthful-init PPO deviators maximise their gains —
and searches the profit target ``δ`` by bisection (the dynamic mechanism-design paper's
protocol, its Theorem 3.1): a cell at ``δ`` *retains* its mechanism when exploitability,
profit loss ``|v − δ|`` and IR loss are all below ``threshold``; the search raises ``δ`` after
a retained cell and lowers it otherwise, until the bracket is at most ``width`` wide, and
returns the largest retained ``δ`` with its mechanism.

Within a cell the mechanism is checkpointed every ``eval_every`` steps on held-out episodes;
where the setting is tabular (discrete types, one good, realised allocations) every checkpoint
is also audited *exactly* (:func:`bilevel.audit.dynamic_exploitability`, milliseconds: the
exact Bayesian best response with one buyer; with several buyers, whose exact best response
needs a mechanism that reads the history only through the experience profile, the exact
clairvoyant best response, an upper bound), and the cell keeps the checkpoint that meets the
thresholds with the smallest objective. Elsewhere the in-training estimate selects, and the
kept checkpoint is audited post hoc by fresh PPO deviators (a lower bound). Cells are stored
in a run store (``store=``): a killed search resumes with the finished cells, and an
unfinished cell is recomputed identically (each cell's seed depends on the designer's seed and
δ only).

Baselines beside the learned mechanism (exact where tabular): the dynamic pivot mechanism
(Bergemann and Välimäki 2010), the best posted price, and with one period Myerson's optimum.
"""

from __future__ import annotations

import io
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bilevel._contract import Designer
from bilevel.models.dynamic import BanditAuctionSetting, make_bandit_setting
from bilevel.solvers.dynamic import (
    MechanismNet,
    MinMaxConfig,
    MinMaxStats,
    MinMaxTrainer,
    best_posted_price,
    dynamic_pivot,
    exact_arrays,
    load_mechanism,
    markov_form,
    one_period_optimum,
    save_mechanism,
    tabulate,
    truthful_value,
)

__all__ = ["CellResult", "DynamicDesignResult", "DynamicMechanismDesigner", "tabular"]

Tensor = torch.Tensor


def tabular(setting: BanditAuctionSetting) -> bool:
    """Whether the exact programs apply: discrete types, one good, realised allocations."""
    return setting.discrete and setting.n_goods == 1 and setting.allocation == "realized"


@dataclass(frozen=True)
class CellResult:
    """One profit target δ of the search.

    Attributes
    ----------
    delta : float
    retained : bool
        All three losses of the kept checkpoint are below the threshold.
    revenue, welfare : float
        Of the kept checkpoint under truthful reports (exact where tabular).
    exploitability : float
        The audit of the kept checkpoint (exact where tabular, else a learned lower bound).
    exploitability_kind : str
    estimate : float
        The in-training estimate ψ̂ (held-out, the cell's deviators) at that checkpoint.
    ir_loss : float
        Σ_i |h_i| on held-out episodes.
    profit_loss : float
        ``|revenue − δ|``.
    step : int
        The kept checkpoint's step.
    steps : int
        Steps trained.
    seconds : float
        Wall time of the cell.
    curve : list of dict
        Per checkpoint: ``step``, ``revenue``, ``estimate``, ``exploitability`` (exact where
        tabular, else None), ``ir_loss``, ``objective``.
    """

    delta: float
    retained: bool
    revenue: float
    welfare: float
    exploitability: float
    exploitability_kind: str
    estimate: float
    ir_loss: float
    profit_loss: float
    step: int
    steps: int
    seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the run store's record)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class DynamicDesignResult:
    """What :meth:`DynamicMechanismDesigner.fit` found.

    Attributes
    ----------
    delta : float or None
        The largest retained profit target (None if no cell retained a mechanism).
    cells : list of CellResult
        In search order (the trace: identical for identical seeds).
    learned : dict
        The retained mechanism's ``revenue``, ``welfare``, ``ir_loss``, ``exploitability``
        (+ ``exploitability_kind``), ``estimate`` and ``gap`` (= exact − estimate).
    baselines : dict of str to dict
        ``revenue``, ``welfare``, ``exploitability`` (+ kind) of the dynamic pivot mechanism,
        the best posted price and (one period) the optimum.
    status : str
        ``"completed"`` or ``"no_mechanism_retained"``.
    seconds : float
    """

    delta: float | None
    cells: list[CellResult]
    learned: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    status: str
    seconds: float

    @property
    def success(self) -> bool:
        """Whether a mechanism was retained."""
        return self.delta is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"delta": self.delta, "cells": [c.to_dict() for c in self.cells],
                "learned": self.learned, "baselines": self.baselines, "status": self.status,
                "seconds": self.seconds}


def _exact_audit(setting: BanditAuctionSetting, net: Any) -> tuple[float, str, float, float]:
    """(exploitability, its kind, revenue, welfare) of a torch mechanism by exact programs.

    Revenue and welfare are exact. The exploitability is the exact Bayesian best response where
    it applies (one buyer, or a mechanism that reads the history only through the experience
    profile); otherwise -- several buyers and a network that reads the whole report history --
    the clairvoyant best response, an exact *upper bound* (kind "upper_bound"), so retention
    stays conservative.
    """
    from bilevel.audit import dynamic_exploitability

    hist = tabulate(setting, net)
    tv = truthful_value(hist, **exact_arrays(setting))
    bayes = setting.n_buyers == 1 or markov_form(hist) is not None
    phi = dynamic_exploitability(setting, hist,
                                 estimator="exact" if bayes else "clairvoyant")
    return float(phi.total), str(phi.kind), float(tv.revenue), float(tv.welfare)


def baselines(setting: BanditAuctionSetting) -> dict[str, dict[str, Any]]:
    """Exact values of the dynamic pivot, the best posted price and the one-period optimum.

    Parameters
    ----------
    setting : BanditAuctionSetting
        Tabular (else an empty dict: these programs need exact tables).

    Returns
    -------
    dict of str to dict
        Per baseline: ``revenue``, ``welfare``, ``exploitability``, ``exploitability_kind``,
        ``ir_violation`` (0: each is individually rational under truthful reports).
    """
    from bilevel.audit import dynamic_exploitability

    if not tabular(setting):
        return {}
    a = exact_arrays(setting)
    n, T = setting.n_buyers, setting.horizon
    mechs: dict[str, Any] = {"dynamic pivot": dynamic_pivot(n=n, horizon=T, **a)}
    best = best_posted_price(n=n, horizon=T, support=a["support"], gamma=a["gamma"],
                             prior=a["prior"], kernel=a["kernel"])
    from bilevel.solvers.dynamic import posted_price

    mechs[f"best posted price ({best.price:g})"] = posted_price(
        best.price, n=n, horizon=T, support=a["support"])
    if T == 1:
        mechs["optimal (Myerson)"] = one_period_optimum(n=n, support=a["support"],
                                                        prior=a["prior"])
    out: dict[str, dict[str, Any]] = {}
    for name, m in mechs.items():
        tv = truthful_value(m, **a)
        phi = dynamic_exploitability(setting, m)
        out[name] = {"revenue": tv.revenue, "welfare": tv.welfare,
                     "exploitability": phi.total, "exploitability_kind": phi.kind,
                     "ir_violation": 0.0}
    return out


def bracket(setting: BanditAuctionSetting) -> tuple[float, float]:
    """Default δ bracket: (best posted price's revenue, efficient welfare) where tabular,
    else (0, the welfare of serving the highest value every period, simulated)."""
    if tabular(setting):
        b = baselines(setting)
        lo = max(v["revenue"] for k, v in b.items() if k.startswith("best posted"))
        hi = b["dynamic pivot"]["welfare"]
        return float(lo), float(hi)
    from bilevel.models.dynamic import BanditAuctionProcess

    proc = BanditAuctionProcess(setting)
    g = torch.Generator().manual_seed(12345)
    proc.reset(16384, g)
    n, m = setting.n_buyers, setting.n_goods
    while not proc.finished:
        v = proc.values
        who = v.argmax(dim=1)  # (E, m)
        x = torch.nn.functional.one_hot(who + 1, n + 1).to(v.dtype).permute(0, 2, 1)
        proc.step(v, x, torch.zeros(v.shape[0], n, dtype=v.dtype), g)
    del m
    return 0.0, float(proc.total_welfare.mean())


class DynamicMechanismDesigner(Designer):
    """Learn a dynamic mechanism of the bandit auction by min–max training and a δ search.

    Parameters
    ----------
    delta : float, optional
        Train one cell at this profit target instead of searching.
    bracket : (float, float), optional
        The δ search's initial ``(lo, hi)`` (default :func:`bracket`).
    width : float, default 0.1
        Stop when ``hi − lo <= width``.
    threshold : float, default 0.1
        Retention threshold of exploitability, profit loss and IR loss.
    steps : int, default 2000
        Min–max steps per cell.
    batch : int, default 256
        Episodes per player per step.
    alpha, beta : float, default 1.0 and 10.0
        Weights of the exploitability estimate and of the IR loss.
    lr_mechanism, lr_deviator : float, default 3e-4 and 3e-3
        Adam step sizes (two timescales).
    deviator_reset : int, default 100
        Steps between deviator restarts (see :class:`MinMaxConfig`).
    ir : {"interim", "ex_ante"}, default "interim"
    type_stream : {"none", "reports", "true"}, default "none"
        The network's type slot ("true" is an ablation that sees the true types: its
        exploitability is meaningless and the audit says so).
    eval_every : int, default 50
        Steps between checkpoints.
    eval_episodes : int, default 2048
        Held-out episodes per player and checkpoint.
    final_episodes : int, default 65536
        Episodes of the final evaluation (IR loss, and revenue where not tabular).
    audit_episodes : int, default 100000
        Non-tabular settings: training episodes of the post-hoc learned audit per buyer.
    seed : int, default 0
    store : str or Path, optional
        A run store (sqlite file): finished cells are kept, a rerun resumes.
    threads : int or None, default 1
        Torch threads during ``fit``.
    progress : bool, default False
        One line per checkpoint and per cell on stderr.

    Attributes
    ----------
    setting_ : BanditAuctionSetting
    mechanism_ : MechanismNet or None
        The retained mechanism of the largest retained δ.
    delta_ : float or None
    result_ : DynamicDesignResult
    history_ : list of dict
        The learning curves: per checkpoint of every cell, with ``delta``.
    evaluation_ : dict
        ``result_.learned``.

    Examples
    --------
    >>> d = DynamicMechanismDesigner(delta=1.2, steps=20, eval_every=10, final_episodes=1024)
    >>> d.fit("discrete", horizon=1).result_.cells[0].steps
    20
    """

    def __init__(
        self,
        *,
        delta: float | None = None,
        bracket: tuple[float, float] | None = None,
        width: float = 0.1,
        threshold: float = 0.1,
        steps: int = 2000,
        batch: int = 256,
        alpha: float = 1.0,
        beta: float = 10.0,
        lr_mechanism: float = 3e-4,
        lr_deviator: float = 3e-3,
        deviator_reset: int = 100,
        ir: str = "interim",
        type_stream: str = "none",
        eval_every: int = 50,
        eval_episodes: int = 2048,
        final_episodes: int = 65536,
        audit_episodes: int = 100_000,
        seed: int = 0,
        store: str | Path | None = None,
        threads: int | None = 1,
        progress: bool = False,
    ) -> None:
        self.delta = delta
        self.bracket = bracket
        self.width = width
        self.threshold = threshold
        self.steps = steps
        self.batch = batch
        self.alpha = alpha
        self.beta = beta
        self.lr_mechanism = lr_mechanism
        self.lr_deviator = lr_deviator
        self.deviator_reset = deviator_reset
        self.ir = ir
        self.type_stream = type_stream
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.final_episodes = final_episodes
        self.audit_episodes = audit_episodes
        self.seed = seed
        self.store = store
        self.threads = threads
        self.progress = progress

    # ------------------------------------------------------------------ validation

    def _check(self) -> None:
        for name in ("steps", "batch", "eval_every", "eval_episodes", "final_episodes",
                     "audit_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        for name in ("width", "threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: expected a float > 0, got {v!r}")
        if self.bracket is not None:
            b = self.bracket
            if (not isinstance(b, (tuple, list)) or len(b) != 2
                    or not all(isinstance(x, (int, float)) for x in b) or not b[0] < b[1]):
                raise ValueError(f"bracket: expected (lo, hi) with lo < hi, got {b!r}")
        if self.delta is not None and (isinstance(self.delta, bool)
                                       or not isinstance(self.delta, (int, float))):
            raise ValueError(f"delta: expected a float or None, got {self.delta!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an int, got {self.seed!r}")

    def _config(self, delta: float) -> MinMaxConfig:
        try:
            return MinMaxConfig(delta=float(delta), alpha=self.alpha, beta=self.beta,
                                batch=self.batch, lr_mechanism=self.lr_mechanism,
                                lr_deviator=self.lr_deviator, ir=self.ir,
                                deviator_reset=self.deviator_reset)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None

    # ------------------------------------------------------------------ one cell

    def _cell_seed(self, delta: float) -> int:
        return (self.seed * 1_000_003 + round(delta * 1e6)) % (2**62)

    def _train_cell(self, setting: BanditAuctionSetting, delta: float
                    ) -> tuple[CellResult, MechanismNet]:
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(self._cell_seed(delta))
        net = MechanismNet(setting, type_stream=self.type_stream, generator=g)
        trainer = MinMaxTrainer(setting, net, self._config(delta), g)
        exact = tabular(setting) and self.type_stream == "none"
        exact_kind = "exact"
        thr = self.threshold
        best: tuple[tuple[int, float], dict[str, Any], dict[str, Tensor]] | None = None
        curve: list[dict[str, Any]] = []
        for step in range(1, self.steps + 1):
            trainer.step()
            if step % self.eval_every and step != self.steps:
                continue
            ev: MinMaxStats = trainer.evaluate(self.eval_episodes, seed=step)
            phi = rev = wel = None
            if exact:
                phi, exact_kind, rev, wel = _exact_audit(setting, net)
            point: dict[str, Any] = {"step": step, "revenue": ev.revenue if rev is None else rev,
                     "estimate": ev.exploitability, "exploitability": phi,
                     "ir_loss": ev.ir_loss, "welfare": ev.welfare if wel is None else wel}
            profit = abs(point["revenue"] - delta)
            ex = ev.exploitability if phi is None else phi
            point["objective"] = profit + self.alpha * ex + self.beta * ev.ir_loss
            curve.append(point)
            feasible = ex <= thr and ev.ir_loss <= thr and profit <= thr
            key = (0 if feasible else 1, float(point["objective"]))
            if best is None or key < best[0]:
                best = (key, point, {k: v.detach().clone() for k, v in net.state_dict().items()})
            if self.progress:
                print(f"  δ={delta:.4f} step {step}/{self.steps}: revenue {point['revenue']:.4f}"
                      f" ψ̂ {ev.exploitability:.4f}"
                      + ("" if phi is None else f" φ {phi:.4f}")
                      + f" IR {ev.ir_loss:.4f}", file=sys.stderr)
        assert best is not None
        _, point, state = best
        net.load_state_dict(state)
        kind = exact_kind
        if exact:
            phi_final = float(point["exploitability"])
        elif self.type_stream == "true":
            # the network sees the true types: no audit can call it on reports alone
            phi_final, kind = float(point["estimate"]), "lower_bound"
        else:
            from bilevel.audit import dynamic_exploitability

            audit = dynamic_exploitability(setting, net, estimator="learned",
                                           episodes=self.audit_episodes, seeds=1,
                                           eval_episodes=16384, seed=self._cell_seed(delta))
            phi_final, kind = audit.total, audit.kind
        final = trainer.evaluate(self.final_episodes, seed=10**6 + int(point["step"]))
        revenue = float(point["revenue"]) if exact else final.revenue
        welfare = float(point["welfare"]) if exact else final.welfare
        profit = abs(revenue - delta)
        retained = phi_final <= thr and final.ir_loss <= thr and profit <= thr
        cell = CellResult(delta=float(delta), retained=bool(retained), revenue=revenue,
                          welfare=welfare, exploitability=float(phi_final),
                          exploitability_kind=kind, estimate=float(point["estimate"]),
                          ir_loss=float(final.ir_loss), profit_loss=profit,
                          step=int(point["step"]), steps=self.steps,
                          seconds=time.perf_counter() - t0, curve=curve)
        return cell, net

    def _cell(self, setting: BanditAuctionSetting, delta: float, store: Any
              ) -> tuple[CellResult, MechanismNet]:
        key = f"cell/{delta:.9f}"
        if store is not None:
            rec, blob = store.get(key), store.get_blob(key)
            if rec is not None and blob is not None:
                net = MechanismNet(setting, type_stream=self.type_stream)
                state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
                net.load_state_dict(state)
                if self.progress:
                    print(f"δ={delta:.4f}: from the store", file=sys.stderr)
                return CellResult.from_dict(rec), net
        cell, net = self._train_cell(setting, delta)
        if store is not None:
            buf = io.BytesIO()
            torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, buf)
            store.put_blob(key, buf.getvalue())
            store.put(key, cell.to_dict())
        if self.progress:
            print(f"δ={delta:.4f}: {'retained' if cell.retained else 'rejected'} (revenue "
                  f"{cell.revenue:.4f}, φ {cell.exploitability:.4f} {cell.exploitability_kind},"
                  f" IR {cell.ir_loss:.4f}, {cell.seconds:.0f} s)", file=sys.stderr)
        return cell, net

    # ------------------------------------------------------------------ fit

    def fit(self, setting: str | BanditAuctionSetting = "discrete", **params: Any
            ) -> DynamicMechanismDesigner:
        """Search δ (or train the one cell at ``delta``) and evaluate the retained mechanism.

        Parameters
        ----------
        setting : str or BanditAuctionSetting, default "discrete"
            A registered setting name (with ``params``) or a setting.
        **params
            Keyword arguments of a registered setting (e.g. ``n_buyers=2, horizon=3``).

        Returns
        -------
        DynamicMechanismDesigner
            ``self``, fitted.
        """
        self._check()
        if isinstance(setting, str):
            s = make_bandit_setting(setting, **params)
        elif isinstance(setting, BanditAuctionSetting):
            if params:
                raise ValueError(f"expected no setting parameters with a BanditAuctionSetting, "
                                 f"got {sorted(params)}")
            s = setting
        else:
            raise TypeError(f"expected a setting name or a BanditAuctionSetting, got "
                            f"{type(setting).__name__}")
        if s.allocation != "realized":
            raise ValueError("expected allocation='realized' (the min-max gradient needs drawn "
                             f"winners), got {s.allocation!r}")
        if self.type_stream == "true":
            warnings.warn(
                "type_stream='true': the mechanism network sees the true types, so it can "
                "punish any misreport and its exploitability is meaningless (an ablation of "
                "the paper's architecture); the reported figure is the in-training estimate",
                UserWarning, stacklevel=2)
        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        try:
            return self._fit(s)
        finally:
            torch.set_num_threads(before)

    def _fit(self, s: BanditAuctionSetting) -> DynamicMechanismDesigner:
        from bilevel._store import ResultStore

        t0 = time.perf_counter()
        store = ResultStore(self.store) if self.store is not None else None
        cells: list[CellResult] = []
        kept: tuple[float, MechanismNet, CellResult] | None = None

        def run(delta: float) -> bool:
            nonlocal kept
            cell, net = self._cell(s, delta, store)
            cells.append(cell)
            if cell.retained and (kept is None or delta > kept[0]):
                kept = (delta, net, cell)
            return cell.retained

        if self.delta is not None:
            run(float(self.delta))
        else:
            lo, hi = self.bracket if self.bracket is not None else bracket(s)
            lo0 = lo
            while hi - lo > self.width:
                mid = 0.5 * (lo + hi)
                if run(mid):
                    lo = mid
                else:
                    hi = mid
            if kept is None:
                run(lo0)  # the known feasible value itself
        base = baselines(s)
        learned: dict[str, Any] = {}
        if kept is not None:
            delta, _net, cell = kept
            learned = {"delta": delta, "revenue": cell.revenue, "welfare": cell.welfare,
                       "ir_loss": cell.ir_loss, "exploitability": cell.exploitability,
                       "exploitability_kind": cell.exploitability_kind,
                       "estimate": cell.estimate,
                       "gap": cell.exploitability - cell.estimate, "step": cell.step}
        self.setting_ = s
        self.mechanism_ = None if kept is None else kept[1]
        self.delta_ = None if kept is None else kept[0]
        self.history_ = [{"delta": c.delta, **p} for c in cells for p in c.curve]
        self.result_ = DynamicDesignResult(
            delta=self.delta_, cells=cells, learned=learned, baselines=base,
            status="completed" if kept is not None else "no_mechanism_retained",
            seconds=time.perf_counter() - t0)
        self.evaluation_ = learned
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the retained mechanism (``weights.pt`` + ``config.json``) and
        ``result.json`` to the directory ``path``."""
        from bilevel._jsonsafe import to_json

        self._check_fitted("result_")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        if self.mechanism_ is not None:
            save_mechanism(self.mechanism_, out)
        (out / "result.json").write_text(to_json(self.result_.to_dict(), indent=2) + "\n")
        return out

    @staticmethod
    def load_mechanism(path: str | Path) -> MechanismNet:
        """The mechanism a :meth:`save` wrote (weights only, never unpickled)."""
        return load_mechanism(path)

