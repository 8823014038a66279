"""Exploitability of dynamic mechanisms in the bandit auction: exact, clairvoyant, learned.

Buyers report every period and their values evolve with what they consume, so a deviation is a
whole report strategy. Three estimators of each buyer's best gain against truthful others (the
sum is the exploitability, NashConv at truth):

``"exact"``
    The buyer's own decision problem solved by backward induction (a finite MDP for one buyer;
    for several, a recursion over the buyer's belief about the others' values, which is exact
    because the others report truthfully) — discrete types, one good, realised allocations.
``"clairvoyant"``
    The same buyer also sees the others' current values: an MDP over the joint state whose value
    bounds the Bayesian best response from above (equal to it for one buyer). A zero proves that
    no deviation pays (periodic ex-post incentive compatibility).
``"learned"``
    PPO deviators that start truthful (a prototype plus a zero residual) and learn to exploit
    the frozen mechanism; for each buyer the best of ``seeds`` runs (chosen on one evaluation
    sample) is scored on an independent one against truthful reports with common random
    numbers. A lower bound, for any setting (continuous types, several goods).

Torch mechanisms (``bilevel.models.dynamic.Mechanism``) are tabulated exactly over the public
histories for the exact estimators; :class:`~bilevel.solvers.dynamic.TabularMechanism` and
:class:`~bilevel.solvers.dynamic.HistoryMechanism` (e.g. the dynamic pivot mechanism) are taken
as they are, and played through :func:`~bilevel.solvers.dynamic.as_torch` by the learned one.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

import numpy as np

from bilevel.audit._result import Exploitability, Kind
from bilevel.models.dynamic import BanditAuctionSetting

__all__ = ["ESTIMATORS", "dynamic_exploitability"]

#: The estimators of :func:`dynamic_exploitability`.
ESTIMATORS: tuple[str, ...] = ("exact", "clairvoyant", "learned")


def _exact_form(setting: BanditAuctionSetting, mechanism: Any, estimator: str) -> Any:
    from bilevel.solvers.dynamic import HistoryMechanism, TabularMechanism, markov_form, tabulate

    if not (setting.discrete and setting.n_goods == 1 and setting.allocation == "realized"):
        why = ("continuous types" if not setting.discrete else
               f"{setting.n_goods} goods" if setting.n_goods != 1 else
               f"allocation={setting.allocation!r}")
        raise ValueError(
            f"expected a discrete one-good setting with realised allocations for the "
            f"{estimator!r} estimator (exact tables), got {why}; use estimator='learned'"
        )
    if isinstance(mechanism, (TabularMechanism, HistoryMechanism)):
        form: Any = mechanism
    elif callable(mechanism):
        form = tabulate(setting, mechanism, name=getattr(mechanism, "__name__", "mechanism"))
    else:
        raise TypeError(
            "expected a TabularMechanism, HistoryMechanism or torch mechanism callable, got "
            f"{type(mechanism).__name__}"
        )
    n, T, V = setting.n_buyers, setting.horizon, len(setting.support)
    got = (form.horizon, form.n)
    if got != (T, n):
        raise ValueError(
            f"expected a mechanism for T = {T} periods and n = {n} buyers, got T = {got[0]}, "
            f"n = {got[1]}"
        )
    if isinstance(form, HistoryMechanism):
        markov = markov_form(form)  # a Markov table also gives the best-response policy
        if markov is not None:
            form = markov
        elif n > 1 and estimator == "exact":
            raise ValueError(
                "expected a mechanism that reads the history only through the experience "
                "profile for the exact Bayesian best response of several buyers, got one that "
                "reads more; use estimator='clairvoyant' (an upper bound) or 'learned'"
            )
    shape = form.allocation[0].shape if isinstance(form, HistoryMechanism) else (
        form.allocation.shape[2:])
    if tuple(shape[-2:]) != (V**n, n + 1):
        raise ValueError(
            f"expected tables over V**n = {V**n} report profiles and n + 1 = {n + 1} outcomes, "
            f"got {tuple(shape[-2:])}"
        )
    return form


def _exact(
    setting: BanditAuctionSetting, mechanism: Any, estimator: str
) -> Exploitability:
    from bilevel.solvers.dynamic import best_response_value, exact_arrays, truthful_value

    form = _exact_form(setting, mechanism, estimator)
    arrays = exact_arrays(setting)
    sup = arrays["support"]
    n = setting.n_buyers
    observe: Literal["own", "clairvoyant"] = "own" if estimator == "exact" else "clairvoyant"
    truth = truthful_value(form, **arrays)
    gains, devs = np.zeros(n), []
    for i in range(n):
        br = best_response_value(form, agent=i, observe=observe, **arrays)
        gains[i] = br.gain
        devs.append(sup[br.policy] if br.policy is not None else np.zeros(0))
    kind: Kind = "exact" if (estimator == "exact" or n == 1) else "upper_bound"
    method = ("bayes-belief-dp" if n > 1 else "mdp-dp") if estimator == "exact" else (
        "clairvoyant-mdp-dp")
    return Exploitability(
        total=float(gains.sum()), per_agent=gains, se=None, per_agent_se=None,
        best_deviation=tuple(devs), kind=kind, method=method, resolution=None,
        n_profiles=len(sup) ** n, notion="bayes" if estimator == "exact" else "clairvoyant",
        truthful_utility=np.asarray(truth.utilities, dtype=np.float64),
    )


def _learned(
    setting: BanditAuctionSetting,
    mechanism: Any,
    *,
    episodes: int,
    seeds: int,
    eval_episodes: int,
    seed: int,
    strength: float,
    config: Any,
    progress: bool,
    max_seconds: float | None,
) -> Exploitability:
    import torch

    from bilevel.solvers.dynamic import (
        HistoryMechanism,
        TabularMechanism,
        as_torch,
        deviation_gain,
        train_deviator,
    )
    from bilevel.solvers.rl import PPOConfig

    if isinstance(mechanism, HistoryMechanism):
        raise ValueError(
            "expected a torch mechanism or a TabularMechanism for estimator='learned', got a "
            "HistoryMechanism (the process does not expose the winners' history)"
        )
    if isinstance(mechanism, TabularMechanism):
        mech = as_torch(mechanism, setting)
    elif callable(mechanism):
        mech = mechanism
    else:
        raise TypeError(
            f"expected a torch mechanism callable or a TabularMechanism, got "
            f"{type(mechanism).__name__}"
        )
    for name, val in (("episodes", episodes), ("seeds", seeds), ("eval_episodes", eval_episodes)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"expected {name} as an int >= 1, got {val!r}")
    T = setting.horizon
    if config is None:
        E = min(1024, episodes)
        steps = T * -(-8 // T)  # whole episodes, about 8 steps per row and update
        config = PPOConfig(total_steps=episodes * T, num_envs=E, num_steps=steps,
                           num_minibatches=4 if (E * steps) % 4 == 0 else 1,
                           gamma=setting.gamma, gae_lambda=1.0, ent_coef=0.01)
    elif not isinstance(config, PPOConfig):
        raise TypeError(f"expected config as a PPOConfig, got {type(config).__name__}")
    n = setting.n_buyers
    gains, ses, truthful = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        best: tuple[float, Any] | None = None
        for k in range(seeds):
            gen = torch.Generator().manual_seed(seed * 7919 + 101 * i + k)
            res = train_deviator(setting, mech, config, gen, agent=i, strength=strength,
                                 max_seconds=max_seconds)
            sel = deviation_gain(setting, mech, res.policy, agent=i, episodes=eval_episodes,
                                 seed=2 * (seed * 1009 + i) + 1)
            if progress:
                print(f"  buyer {i + 1} seed {k}: gain {sel.gain:+.5f} ± {sel.se:.5f} "
                      f"({res.env_steps} steps, {res.wall_time:.1f} s)", file=sys.stderr)
            if best is None or sel.gain > best[0]:
                best = (sel.gain, res.policy)
        assert best is not None  # seeds >= 1
        final = deviation_gain(setting, mech, best[1], agent=i, episodes=eval_episodes,
                               seed=2 * (seed * 1009 + i) + 2)
        gains[i], ses[i], truthful[i] = final.gain, final.se, final.truthful
    return Exploitability(
        total=float(gains.sum()), per_agent=gains, se=float(math.sqrt(float((ses**2).sum()))),
        per_agent_se=ses, best_deviation=tuple(np.zeros(0) for _ in range(n)),
        kind="lower_bound",
        method=f"ppo-deviators(episodes={episodes}, seeds={seeds}, strength={strength:g})",
        resolution=None, n_profiles=eval_episodes, notion="bayes",
        truthful_utility=truthful,
    )


def dynamic_exploitability(
    setting: BanditAuctionSetting,
    mechanism: Any,
    *,
    estimator: str = "exact",
    episodes: int = 200_000,
    seeds: int = 3,
    eval_episodes: int = 65_536,
    seed: int = 0,
    strength: float = 2.0,
    config: Any = None,
    progress: bool = False,
    max_seconds: float | None = None,
) -> Exploitability:
    """Exploitability of a dynamic mechanism of the bandit auction (buyers report every period).

    Parameters
    ----------
    setting : BanditAuctionSetting
    mechanism : torch mechanism, TabularMechanism or HistoryMechanism
        A callable ``(history (E, τ+1, n, m), cumulative (E, n, m)) -> (allocation (E, n+1, m),
        payments (E, n))`` (``bilevel.models.dynamic.Mechanism``: posted prices, second price,
        a network), or exact tables (``bilevel.solvers.dynamic``: the dynamic pivot mechanism,
        posted prices, myopic second price).
    estimator : {"exact", "clairvoyant", "learned"}, default "exact"
        See the module docstring. The exact ones need discrete types, one good and realised
        allocations; "exact" with several buyers also needs a mechanism that reads the history
        only through the experience profile.
    episodes : int, default 200000
        Learned: training episodes per deviator run.
    seeds : int, default 3
        Learned: independent runs per buyer (the best is kept).
    eval_episodes : int, default 65536
        Learned: episodes of each paired evaluation (selection, then the reported score).
    seed : int, default 0
        Learned: the only source of randomness.
    strength : float, default 2.0
        Learned, discrete types: initial prototype strength ``k`` of the truthful report's
        logit. The greedy deviator is truthful at initialisation for any ``k > 0``; a moderate
        ``k`` keeps it exploring (at ``k = 10`` it tries a lie with probability ~1e-4 and
        finds none of the posted price's 0.109 gain in 2e5 episodes; at 2 it finds 0.106–0.114).
    config : PPOConfig, optional
        Learned: PPO hyperparameters (default: 1,024 rows, rollouts of whole episodes,
        GAE λ = 1, the setting's γ, ``episodes × T`` steps).
    progress : bool, default False
        Learned: one line per run on stderr.
    max_seconds : float, optional
        Learned: wall-clock cap of each run.

    Returns
    -------
    Exploitability
        ``notion="bayes"`` (the buyer sees its own values, reports and the public outcomes),
        or ``"clairvoyant"``; kind "exact", "upper_bound" (clairvoyant, n ≥ 2) or
        "lower_bound" (learned, with paired standard errors).

    Raises
    ------
    ValueError
        For an unknown estimator, a mechanism whose tables do not fit the setting, a setting
        without exact tables given to an exact estimator, or a history-reading mechanism given
        to the exact Bayesian estimator with several buyers.
    TypeError
        For a setting or mechanism of the wrong type.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=3)
    >>> r = dynamic_exploitability(s, posted_price(s, 1.5))
    >>> round(r.total, 6), r.kind
    (0.10932, 'exact')
    """
    if not isinstance(setting, BanditAuctionSetting):
        raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"expected estimator in {ESTIMATORS}, got {estimator!r}")
    if getattr(mechanism, "type_stream", None) == "true":
        raise ValueError(
            "expected a mechanism that reads the reports only, got a type_stream='true' network: "
            "it sees the true types, so its exploitability is meaningless (leakage)"
        )
    if estimator == "learned":
        return _learned(setting, mechanism, episodes=episodes, seeds=seeds,
                        eval_episodes=eval_episodes, seed=seed, strength=strength,
                        config=config, progress=progress, max_seconds=max_seconds)
    return _exact(setting, mechanism, estimator)

