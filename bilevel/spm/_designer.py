"""``SPMDesigner``: learn a sequential price mechanism with PPO and compare it with baselines.

The designer trains the batched PPO of :mod:`bilevel.solvers.rl` on the SPM decision process
(:class:`bilevel.solvers.spm.SPMBatchedEnv`) with the chosen observation statistic, evaluates the
greedy (deterministic) learned mechanism — exactly by enumerating the type support when it is
finite and small, otherwise by Monte Carlo with a standard error — and puts it beside

* **RSD** (random serial dictatorship: random order, all prices 0), evaluated, not learned;
* **ASP** (anonymous static prices): the same PPO with a constant observation (``"none"``), so
  the policy can only output one order and one price vector;
* **PSP** (personalised static prices): the same PPO observing only which agents are left
  (``"agents_left"``; Brero et al. 2021, Proposition 6);
* the optimum ``E[OPT]`` (welfare objective) and the best SPM / PSP / ASP values where the
  dynamic programs and searches of :mod:`bilevel.solvers.spm` apply (else the known best-SPM
  value of a default setting, :data:`REFERENCE_BEST_SPM`).

Training uses the welfare-loss reward (objective − OPT(v), Brero et al. 2021, footnote 5) for
welfare
and revenue and the objective itself for max-min fairness. During training the greedy policy
is evaluated every few updates on fresh episodes (the learning curve); the best of these
snapshots is the learned mechanism, whose reported value comes from a separate final
evaluation (exact, or Monte Carlo on other draws), so the selection does not bias it.

Keeps the designer contract of :mod:`bilevel._contract`: ``__init__`` stores keyword arguments,
:meth:`SPMDesigner.fit` takes the setting (or its name), validates, trains and returns ``self``
with fitted attributes ending in ``_``.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch

from bilevel._contract import (
    Designer,
    Rule,
    RunStatus,
    bad_parameter,
    check_parameters,
    choice_rule,
    int_rule,
)
from bilevel.models.spm import (
    OBJECTIVES,
    STATISTICS,
    TIE_RULES,
    SPMSetting,
    make_spm_setting,
)
from bilevel.solvers.rl import (
    Action,
    ActorCritic,
    EnvStep,
    PPOConfig,
    PPOResult,
    PPOUpdate,
    load_weights,
    rollout_objective,
    train_ppo,
)
from bilevel.solvers.spm import (
    SPMBatchedEnv,
    SPMPolicy,
    SPMValue,
    best_asp_value,
    best_psp_value,
    best_spm_value,
    evaluate_mechanism,
    expected_optimum,
    resolve_price_grid,
    rsd_value,
)

__all__ = [
    "REFERENCE_BEST_SPM",
    "SPMDesignResult",
    "SPMDesigner",
    "best_values",
    "default_ppo_config",
    "mechanism_of",
]

FloatArray = npt.NDArray[np.float64]
Tensor = torch.Tensor
Policy = Callable[[EnvStep], Action]

#: Best SPM values of the paper's settings at their default parameters (normalised units),
#: keyed by setting name; ``correlated`` is for δ = 0. Each follows from the setting's
#: construction (Brero et al. 2021, Experimental Results); the tests check the dynamic
#: programs against them where both apply.
REFERENCE_BEST_SPM: dict[str, float] = {
    "proposition1": 2.5 / 3.0,
    "colors": 15.0,
    "two_worlds": 0.692187,
    "inventory": 9.559507,
    "kitchen_sink": 0.26192,
    "id": 1.549219,
    "correlated": 4.1293,
}
_REFERENCE_PARAMS: dict[str, dict[str, Any]] = {
    "correlated": {"n_agents": 20, "n_items": 5, "delta": 0.0},
    "two_worlds": {"n_agents": 10},
    "inventory": {"n_agents": 20, "n_items": 10},
    "colors": {"n_per_color": 10},
}
_BASELINE_STATISTIC = {"asp": "none", "psp": "agents_left"}


def _value_dict(v: SPMValue) -> dict[str, Any]:
    return {"value": v.value, "se": v.se, "method": v.method, "n_profiles": v.n_profiles}


@dataclass(frozen=True)
class SPMDesignResult:
    """What :meth:`SPMDesigner.fit` found (all values in the setting's normalised units).

    Attributes
    ----------
    setting : str
        Setting name.
    params : dict
        Setting parameters.
    statistic, objective : str
        Observation statistic and objective of the learned mechanism.
    learned : SPMValue
        Expected objective of the greedy learned mechanism (``bilevel.solvers.spm.SPMValue``:
        exact by enumeration where the support is finite and small, else Monte Carlo).
    baselines : dict of str to SPMValue
        ``"rsd"`` (evaluated), ``"asp"`` and ``"psp"`` (learned, then evaluated), those asked.
    optimum : SPMValue or None
        ``E[OPT]``, the expected ex-post optimal welfare (welfare objective only).
    best : dict of str to SPMValue
        Best ``"spm"`` / ``"psp"`` / ``"asp"`` values where a DP, a search or
        :data:`REFERENCE_BEST_SPM` gives them.
    curves : dict of str to (ndarray of shape (U,), ndarray of shape (U,))
        Learning curves ``(env steps, greedy-policy mean objective)`` per trained policy
        (``"learned"``, ``"asp"``, ``"psp"``), each point on 4096 fresh episodes.
    env_steps : int
        Environment steps of the learned mechanism's training.
    train_time : float
        Seconds of the learned mechanism's training.
    wall_time : float
        Seconds of the whole fit (every training and evaluation).
    steps_per_second : float
        Environment steps per second of the learned mechanism's training (including the
        periodic greedy evaluations).
    message : str
        Why the learned mechanism's training stopped.
    status : RunStatus
        The same as a code: ``completed``, ``time_limit`` (``max_seconds``) or ``callback``.
    nit : int
        PPO updates of the learned mechanism's training.

    With ``success`` (True: a fit that returns has not failed) and ``stats``, the outer-result
    vocabulary of every designer.
    """

    setting: str
    params: dict[str, Any]
    statistic: str
    objective: str
    learned: SPMValue
    baselines: dict[str, SPMValue]
    optimum: SPMValue | None
    best: dict[str, SPMValue]
    curves: dict[str, tuple[FloatArray, FloatArray]]
    env_steps: int
    train_time: float
    wall_time: float
    steps_per_second: float
    message: str = "completed the step budget"
    status: RunStatus = RunStatus.COMPLETED
    nit: int = 0

    @property
    def success(self) -> bool:
        """True: a fit that returns has not failed."""
        return True

    @property
    def stats(self) -> dict[str, Any]:
        """Training figures of the learned mechanism."""
        return {"env_steps": self.env_steps, "train_time": self.train_time,
                "steps_per_second": self.steps_per_second}

    @property
    def target(self) -> float | None:
        """The value to compare with: the best SPM where known, else ``E[OPT]``."""
        if "spm" in self.best:
            return self.best["spm"].value
        return self.optimum.value if self.optimum is not None else None

    @property
    def ratio(self) -> float | None:
        """``learned / target`` (None without a target or with a non-positive one)."""
        t = self.target
        return self.learned.value / t if t is not None and t > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (curves as lists)."""
        return {
            "setting": self.setting,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()},
            "statistic": self.statistic,
            "objective": self.objective,
            "learned": _value_dict(self.learned),
            "baselines": {k: _value_dict(v) for k, v in self.baselines.items()},
            "optimum": None if self.optimum is None else _value_dict(self.optimum),
            "best": {k: _value_dict(v) for k, v in self.best.items()},
            "target": self.target,
            "ratio": self.ratio,
            "curves": {k: {"steps": x.tolist(), "objective": y.tolist()}
                       for k, (x, y) in self.curves.items()},
            "env_steps": self.env_steps,
            "train_time": self.train_time,
            "wall_time": self.wall_time,
            "steps_per_second": self.steps_per_second,
            "message": self.message,
            "status": str(self.status),
            "nit": self.nit,
        }


def default_ppo_config(setting: SPMSetting, steps: int) -> PPOConfig:
    """The designer's default PPO hyperparameters for a setting.

    512 lockstep episodes, rollouts of ``n`` steps (one episode's maximum length), 4 epochs of
    4 minibatches, learning rate 1e-3 annealed to 0, γ = 1, λ = 0.95, no entropy bonus, and
    an initial price standard deviation of 0.2.

    Parameters
    ----------
    setting : SPMSetting
    steps : int
        Environment steps of training.

    Returns
    -------
    PPOConfig

    Examples
    --------
    >>> default_ppo_config(make_spm_setting("proposition1"), 10_000).batch_size
    1024
    """
    return PPOConfig(total_steps=steps, num_envs=512, num_steps=setting.n_agents,
                     update_epochs=4, num_minibatches=4, learning_rate=1e-3, ent_coef=0.0,
                     init_std=0.2)


def _greedy(policy: ActorCritic) -> Policy:
    return lambda s: policy.act(s.obs, s.masks, deterministic=True)


def mechanism_of(
    policy: ActorCritic, grids: tuple[tuple[float, ...], ...] | None
) -> SPMPolicy:
    """The greedy mechanism of a trained SPM policy, in the exact evaluators' form.

    Parameters
    ----------
    policy : ActorCritic
        Trained on an :class:`~bilevel.solvers.spm.SPMBatchedEnv` (head 0: agent; then a
        continuous price head, or one categorical head per item type over ``grids``).
    grids : tuple of d tuples of float, or None
        The price grids of the environment (None: continuous prices).

    Returns
    -------
    callable
        ``mechanism(obs (E, obs_dim), agent_mask (E, n)) -> (agent (E,), prices (E, d))``,
        float64 prices.
    """
    grid_t = None if grids is None else [torch.tensor(g, dtype=torch.float64) for g in grids]

    def mechanism(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        E = mask.shape[0]
        masks = (mask,) if grid_t is None else (
            mask, *(torch.ones(E, len(g), dtype=torch.bool) for g in grid_t))
        a = policy.act(obs, masks, deterministic=True)
        if grid_t is None:
            prices = a.continuous.to(torch.float64).clamp(0.0, 1.0)
        else:
            prices = torch.stack([g[a.categorical[:, 1 + j]] for j, g in enumerate(grid_t)],
                                 dim=1)
        return a.categorical[:, 0], prices

    return mechanism


def _reference_best(setting: SPMSetting, objective: str, tie: str) -> float | None:
    if objective != "welfare" or tie != "strict" or setting.name not in REFERENCE_BEST_SPM:
        return None
    want = _REFERENCE_PARAMS.get(setting.name, {})
    if any(setting.params.get(k) != v for k, v in want.items()):
        return None
    return REFERENCE_BEST_SPM[setting.name]


def best_values(setting: SPMSetting, objective: str, tie: str) -> dict[str, SPMValue]:
    """Best SPM / PSP / ASP values where a dynamic program or search applies.

    Uses :func:`bilevel.solvers.spm.best_spm_value` and friends; falls back to the known value
    of the best SPM (:data:`REFERENCE_BEST_SPM`, ``method="reference"``) for default settings
    they do not cover.

    Parameters
    ----------
    setting : SPMSetting
    objective, tie : str

    Returns
    -------
    dict of str to SPMValue
        Keys among ``"spm"``, ``"psp"``, ``"asp"`` (those known).
    """
    out: dict[str, SPMValue] = {}
    # The static (PSP/ASP) searches of bilevel.solvers.spm materialise all n! visiting orders
    # before checking their size limit unless agents are exchangeable with one item type;
    # only call them where that is cheap (n <= 8).
    exchangeable = setting.n_types == 1 and setting.iid_components() is not None
    static_ok = exchangeable or setting.n_agents <= 8 or not setting.finite
    if objective in ("welfare", "revenue"):
        for key, fn in (("spm", best_spm_value), ("psp", best_psp_value),
                        ("asp", best_asp_value)):
            if key != "spm" and not static_ok:
                continue
            try:
                out[key] = fn(setting, objective=objective, tie=tie)
            except ValueError:
                continue
    ref = _reference_best(setting, objective, tie)
    if "spm" not in out and ref is not None:
        out["spm"] = SPMValue(ref, 0.0, "reference", 0)
    return out


_RULES: dict[str, Rule] = {
    "statistic": choice_rule(*STATISTICS),
    "objective": choice_rule(*OBJECTIVES),
    "tie": choice_rule(*TIE_RULES),
    "critic": choice_rule("obs", "state"),
    "eval_samples": int_rule(1),
    "baseline_steps": int_rule(1, optional=True),
    "exact_limit": int_rule(1),
    "ppo": Rule("as a PPOConfig or None", lambda v: v is None or isinstance(v, PPOConfig),
                TypeError),
}


class SPMDesigner(Designer):
    """Learn a sequential price mechanism with PPO; compare with RSD/ASP/PSP and the optimum.

    The setting is given to :meth:`fit`.

    Parameters
    ----------
    setting : str or SPMSetting, optional
        Deprecated: pass the setting to :meth:`fit`.
    setting_params : mapping, optional
        Keyword arguments of a registered setting given by name.
    statistic : str, default "price_allocation"
        Observation statistic of the learned mechanism (``bilevel.models.spm.STATISTICS``).
    objective : {"welfare", "revenue", "maxmin"}, optional
        Default: the setting's.
    steps : int, default 1_000_000
        Environment steps of PPO training for each trained policy.
    seed : int, default 0
        Seed of everything random (training, evaluation).
    baselines : sequence of {"rsd", "asp", "psp"}, default all three
    baseline_steps : int, optional
        Training steps of ASP and PSP (default: ``steps``).
    price_grid : "finite", None, "auto", int or grids, default "finite"
        ``"finite"``: the default discrete grid (``"auto"``: 0, the midpoints between
        consecutive support values, 1) for finite-support settings and continuous prices
        otherwise; None: continuous prices; other values as for ``SPMBatchedEnv``. Discrete
        grids spare PPO from learning knife-edge price thresholds: on the kitchen
        sink, continuous prices stall at 84 % of the optimum where the grid reaches it.
    critic : {"obs", "state"}, default "obs"
        Critic input: the observation, or the full history plus private values.
    tie : {"strict", "weak"}, default "strict"
        Buyer tie rule.
    ppo : PPOConfig, optional
        PPO hyperparameters; ``total_steps`` is replaced by ``steps``. Default: 512 rows,
        rollouts of ``n`` steps, 4 epochs of 4 minibatches, lr 1e-3, no entropy bonus,
        initial price standard deviation 0.2.
    eval_samples : int, default 65536
        Monte Carlo episodes of the final evaluation when the support is not enumerated.
        Formerly ``eval_episodes``.
    eval_every : int, default 5
        Updates between greedy-policy evaluations for the learning curve (4096 fresh
        episodes each); the best evaluated snapshot is the learned mechanism.
    exact_limit : int, default 2**21
        Largest finite support evaluated exactly by enumeration (else Monte Carlo).
    exact_references : bool, default True
        Compute the best SPM/PSP/ASP values by DP or search where possible (seconds).
    learning_rate : float, optional
        PPO's Adam step size (default: the PPO configuration's, 1e-3).
    threads : int or None, default 1
        Torch intra-op threads during ``fit`` (restored afterwards; None: torch's setting).
    max_seconds : float, optional
        Wall-time limit of each PPO training (the learned mechanism and each learned
        baseline); a training it stops says so in ``result_.status``.
    progress : bool, default False
        Print progress to stderr.

    Attributes
    ----------
    setting_ : SPMSetting
    policy_ : ActorCritic
        The learned network (``policy_.act(obs, masks)``).
    mechanism_ : callable
        The greedy learned mechanism ``(obs, mask) -> (agent, prices)`` (:func:`mechanism_of`).
    baseline_policies_ : dict of str to ActorCritic
        The trained ASP/PSP policies.
    result_ : SPMDesignResult
    history_ : list of (int, float)
        ``(environment steps, greedy mean objective)`` of the learned mechanism's training.
    evaluation_ : SPMValue
        The learned mechanism's expected objective (``result_.learned``).

    Examples
    --------
    >>> d = SPMDesigner(steps=2048, baselines=(), eval_every=1)
    >>> d.fit("proposition1").result_.optimum.value * 3
    2.5
    >>> d
    SPMDesigner(baselines=(), eval_every=1, steps=2048)
    """

    _renamed: ClassVar[Mapping[str, str]] = {"eval_episodes": "eval_samples"}

    def __init__(
        self,
        setting: str | SPMSetting | None = None,
        *,
        setting_params: Mapping[str, Any] | None = None,
        statistic: str = "price_allocation",
        objective: str | None = None,
        steps: int = 1_000_000,
        seed: int = 0,
        baselines: tuple[str, ...] | list[str] = ("rsd", "asp", "psp"),
        baseline_steps: int | None = None,
        price_grid: Any = "finite",
        critic: str = "obs",
        tie: str = "strict",
        ppo: PPOConfig | None = None,
        eval_samples: int = 65536,
        eval_every: int = 5,
        exact_limit: int = 1 << 21,
        exact_references: bool = True,
        learning_rate: float | None = None,
        threads: int | None = 1,
        max_seconds: float | None = None,
        progress: bool = False,
        **renamed: Any,
    ) -> None:
        self.setting = setting
        self.setting_params = setting_params
        self.statistic = statistic
        self.objective = objective
        self.steps = steps
        self.seed = seed
        self.baselines = baselines
        self.baseline_steps = baseline_steps
        self.price_grid = price_grid
        self.critic = critic
        self.tie = tie
        self.ppo = ppo
        self.eval_samples = eval_samples
        self.eval_every = eval_every
        self.exact_limit = exact_limit
        self.exact_references = exact_references
        self.learning_rate = learning_rate
        self.threads = threads
        self.max_seconds = max_seconds
        self.progress = progress
        self._accept_renamed(renamed)
        if setting is not None:
            warnings.warn(
                "SPMDesigner: pass the setting to fit (SPMDesigner(**params).fit(setting)); "
                "SPMDesigner(setting) goes in the next release",
                DeprecationWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ validation

    def _validate(self, problem: Any = None) -> tuple[SPMSetting, str]:
        given = self.setting if problem is None else problem
        if isinstance(given, SPMSetting):
            if self.setting_params:
                raise bad_parameter("SPMDesigner", "setting_params",
                                    "only with a setting name", self.setting_params)
            setting = given
        elif isinstance(given, str):
            setting = make_spm_setting(given, **dict(self.setting_params or {}))
        else:
            raise TypeError(
                f"SPMDesigner: expected the setting as a name or an SPMSetting, got "
                f"{type(given).__name__}"
            )
        objective = setting.objective if self.objective is None else self.objective
        check_parameters("SPMDesigner", {**self.get_params(deep=False), "objective": objective},
                         _RULES)
        names: Any = self.baselines
        if isinstance(names, str) or any(b not in ("rsd", "asp", "psp") for b in names):
            raise bad_parameter("SPMDesigner", "baselines", "among ('rsd', 'asp', 'psp')",
                                self.baselines)
        return setting, objective

    def _grid(self, setting: SPMSetting) -> Any:
        if isinstance(self.price_grid, str) and self.price_grid == "finite":
            return "auto" if setting.finite else None
        return self.price_grid

    def _config(self, setting: SPMSetting, steps: int) -> PPOConfig:
        cfg = (replace(self.ppo, total_steps=steps) if self.ppo is not None
               else default_ppo_config(setting, steps))
        if self.learning_rate is not None:
            cfg = replace(cfg, learning_rate=float(self.learning_rate))
        return cfg

    def _env(self, setting: SPMSetting, statistic: str, objective: str, num_envs: int,
             dtype: torch.dtype = torch.float32) -> SPMBatchedEnv:
        reward = "objective" if objective == "maxmin" else "welfare_loss"
        return SPMBatchedEnv(setting, statistic=statistic, objective=objective, reward=reward,
                             num_envs=num_envs, price_grid=self._grid(setting),
                             critic=self.critic,
                             tie=self.tie, dtype=dtype)

    # ------------------------------------------------------------------ training

    def _train(
        self, setting: SPMSetting, statistic: str, objective: str, steps: int, seed: int, label: str
    ) -> tuple[ActorCritic, FloatArray, FloatArray, PPOResult, float]:
        cfg = self._config(setting, steps)
        env = self._env(setting, statistic, objective, cfg.num_envs)
        eval_env = self._env(setting, statistic, objective, 4096)
        gen = torch.Generator().manual_seed(seed)
        eval_gen = torch.Generator().manual_seed(seed + 1_000_003)
        xs: list[float] = []
        ys: list[float] = []
        best: dict[str, Any] = {"value": -math.inf, "state": None}

        def evaluate(u: PPOUpdate) -> None:
            if u.update % self.eval_every and u.update != cfg.num_updates:
                return
            mean, _, _ = rollout_objective(eval_env, _greedy(u.policy), 1, eval_gen)
            xs.append(float(u.env_steps))
            ys.append(mean)
            if mean > best["value"]:
                best["value"] = mean
                best["state"] = copy.deepcopy(u.policy.state_dict())
            if self.progress:
                import sys

                print(f"spm {label}: {u.env_steps} steps, greedy objective {mean:.4f}",
                      file=sys.stderr)

        t0 = time.perf_counter()
        res = train_ppo(env, cfg, gen, callback=evaluate, max_seconds=self.max_seconds)
        train_time = time.perf_counter() - t0
        policy = res.policy
        if best["state"] is not None:
            policy.load_state_dict(best["state"])
        policy.eval()
        return (policy, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64),
                res, train_time)

    def fit(self, setting: str | SPMSetting | None = None) -> SPMDesigner:
        """Train the mechanism and the baselines, evaluate all of them.

        Parameters
        ----------
        setting : str or SPMSetting
            A registered setting name (``bilevel.models.spm.list_spm_settings``, with
            ``setting_params``) or a setting.

        Returns
        -------
        SPMDesigner
            ``self``, with ``setting_``, ``policy_``, ``mechanism_``, ``baseline_policies_``,
            ``result_``, ``history_`` and ``evaluation_``.

        Raises
        ------
        TypeError, ValueError
            On invalid parameters (checked before any training).
        """
        setting_, objective = self._validate(setting)
        if self.threads is None:
            return self._fit(setting_, objective)
        previous = torch.get_num_threads()
        torch.set_num_threads(int(self.threads))
        try:
            return self._fit(setting_, objective)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, setting: SPMSetting, objective: str) -> SPMDesigner:
        start = time.perf_counter()
        grids = resolve_price_grid(setting, self._grid(setting))
        policy, xs, ys, trained, train_time = self._train(
            setting, self.statistic, objective, self.steps, self.seed, "learned")
        env_steps = trained.env_steps
        curves = {"learned": (xs, ys)}
        learned = self._evaluate(setting, objective, policy, grids, self.statistic, self.seed + 7)
        baselines: dict[str, SPMValue] = {}
        baseline_policies: dict[str, ActorCritic] = {}
        for k, name in enumerate(self.baselines):
            if name == "rsd":
                baselines["rsd"] = rsd_value(
                    setting, objective=objective, tie=self.tie,
                    generator=torch.Generator().manual_seed(self.seed + 11))
                continue
            stat = _BASELINE_STATISTIC[name]
            bsteps = self.baseline_steps if self.baseline_steps is not None else self.steps
            bpol, bx, by, _, _ = self._train(setting, stat, objective, bsteps,
                                             self.seed + 101 * (k + 1), name)
            curves[name] = (bx, by)
            baseline_policies[name] = bpol
            baselines[name] = self._evaluate(setting, objective, bpol, grids, stat,
                                             self.seed + 17)
        optimum = None
        if objective == "welfare":
            optimum = expected_optimum(
                setting, generator=torch.Generator().manual_seed(self.seed + 19))
        self.setting_ = setting
        self.policy_ = policy
        self.mechanism_ = mechanism_of(policy, grids)
        self.baseline_policies_ = baseline_policies
        self.history_ = [(int(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        self.evaluation_ = learned
        self.result_ = SPMDesignResult(
            setting=setting.name, params=dict(setting.params), statistic=self.statistic,
            objective=objective, learned=learned, baselines=baselines, optimum=optimum,
            best=best_values(setting, objective, self.tie) if self.exact_references else {},
            curves=curves, env_steps=env_steps, train_time=train_time,
            wall_time=time.perf_counter() - start,
            steps_per_second=env_steps / train_time if train_time > 0 else math.inf,
            message=trained.message, status=RunStatus(trained.status), nit=trained.updates)
        return self

    def _evaluate(self, setting: SPMSetting, objective: str, policy: ActorCritic,
                  grids: tuple[tuple[float, ...], ...] | None, statistic: str,
                  seed: int) -> SPMValue:
        samples = None
        if not (setting.finite and setting.n_profiles <= self.exact_limit):
            samples = self.eval_samples
        return evaluate_mechanism(
            setting, mechanism_of(policy, grids), statistic=statistic, objective=objective,
            tie=self.tie, samples=samples, generator=torch.Generator().manual_seed(seed),
            exact_limit=self.exact_limit)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the learned policy and what is needed to rebuild its environment.

        Read back by :func:`bilevel.load` (or :meth:`load`), without unpickling.

        Parameters
        ----------
        path : str or Path
            A weights-only torch file.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        self._check_fitted("policy_")
        grid = resolve_price_grid(self.setting_, self._grid(self.setting_))
        meta = {
            "setting": self.setting_.name,
            "setting_params": {k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in self.setting_.params.items()},
            "statistic": self.statistic,
            "objective": self.result_.objective if hasattr(self, "result_") else self.objective,
            "price_grid": None if grid is None else [list(g) for g in grid],
            "critic": self.critic,
            "tie": self.tie,
        }
        torch.save({"designer": meta, "policy": self.policy_.to_dict()}, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SPMDesigner:
        """Rebuild a designer with the policy written by :meth:`save` (no ``result_``).

        Raises
        ------
        ValueError
            If the file was not written by :meth:`save`.
        """
        blob = load_weights(path, "SPMDesigner.save")
        if not isinstance(blob, dict) or "designer" not in blob or "policy" not in blob:
            raise ValueError(f"expected a file written by SPMDesigner.save, got {str(path)!r}")
        meta = blob["designer"]
        params = {k: (tuple(v) if isinstance(v, list) else v)
                  for k, v in meta["setting_params"].items()}
        d = cls(setting_params=params, statistic=meta["statistic"],
                objective=meta["objective"], price_grid=meta["price_grid"],
                critic=meta["critic"], tie=meta["tie"])
        setting, _ = d._validate(meta["setting"])
        policy = ActorCritic.from_dict(blob["policy"])
        policy.eval()
        d.setting_ = setting
        d.policy_ = policy
        d.mechanism_ = mechanism_of(policy, resolve_price_grid(setting, d._grid(setting)))
        return d

    def evaluate(self, episodes: int = 65536, seed: int = 0) -> SPMValue:
        """Expected objective of the learned (greedy) mechanism; exact where enumerable.

        Parameters
        ----------
        episodes : int, default 65536
            Monte Carlo episodes when the support is not enumerated.
        seed : int, default 0

        Returns
        -------
        SPMValue
        """
        self._check_fitted("policy_")
        obj = self.objective if self.objective is not None else self.setting_.objective
        grids = resolve_price_grid(self.setting_, self._grid(self.setting_))
        samples = None
        if not (self.setting_.finite and self.setting_.n_profiles <= self.exact_limit):
            samples = episodes
        return evaluate_mechanism(
            self.setting_, mechanism_of(self.policy_, grids), statistic=self.statistic,
            objective=obj, tie=self.tie, samples=samples,
            generator=torch.Generator().manual_seed(seed), exact_limit=self.exact_limit)
