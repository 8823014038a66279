"""``StackelbergDesigner``: learn a leader (the mechanism's rules) against no-regret followers.

The leader is trained by PPO (:func:`bilevel.solvers.rl.train_ppo`) on the batched Stackelberg POMDP
(:class:`bilevel.solvers.stackelberg.StackelbergPOMDP`): every leader episode runs a response phase
of whole multiplicative-weights iterations against the leader's committed policy, then a reward
phase against the followers' response. The critic is *centralized* (it also sees the follower
weights, the phase flag and the types) or *plain* (the actor's observation only), and the
``pomdp="basic"`` ablation hides the response-phase transitions from PPO.

Evaluation is exact (:func:`bilevel.stackelberg.evaluate_leader`); the result is a
:class:`bilevel.stackelberg.StackelbergResult`.

Examples
--------
>>> d = StackelbergDesigner(steps=2_000, seed=0, num_envs=4, eval_every=0)
>>> r = d.fit("simple_allocation:1").result_
>>> round(r.value, 4), r.certified
(0.3333, True)
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bilevel._contract import (
    Designer,
    Rule,
    RunStatus,
    bad_parameter,
    check_parameters,
    choice_rule,
    int_rule,
    positive_rule,
)
from bilevel.models.stackelberg import NormalFormGame, StackelbergGame
from bilevel.solvers.rl import (
    Action,
    ActionSpec,
    ActorCritic,
    BatchedEnv,
    EnvStep,
    PPOConfig,
    PPOUpdate,
    train_ppo,
)
from bilevel.solvers.stackelberg import (
    HiddenResponseEnv,
    LeaderGameCore,
    StackelbergPOMDP,
    core_from_game,
    payoff_table,
)
from bilevel.stackelberg._evaluation import (
    LeaderEvaluation,
    _to_game,
    evaluate_leader,
    worst_certified_value,
)
from bilevel.stackelberg._result import StackelbergResult

__all__ = ["StackelbergDesigner"]

FOLLOWERS = ("mw-exact", "mw-sampled", "q-learning")
CRITICS = ("centralized", "plain")
POMDPS = ("stackelberg", "basic")
OBJECTIVES = ("response", "worst-certified")
# MSGSpace response prefixes of the authors' maintained code (SP-B below) for Brero et al.
# (2022, *Stackelberg POMDP*, §5.2), in MW updates
_MSGSPACE_ITERATIONS = {2: 50, 3: 75, 4: 133, 5: 208, 6: 300}


_RULES: dict[str, Rule] = {
    "followers": choice_rule(*FOLLOWERS),
    "critic": choice_rule(*CRITICS),
    "pomdp": choice_rule(*POMDPS),
    "objective": choice_rule(None, *OBJECTIVES),
    "eval_every": int_rule(0),  # 0: evaluate at the end only
    "num_envs": int_rule(1, optional=True),
    "update_epochs": int_rule(1),
    "num_minibatches": int_rule(1),
    "iterations": int_rule(1, optional=True),
    "reward_games": int_rule(1, optional=True),
    "threshold": positive_rule(),
}


def _game_defaults(game: StackelbergGame) -> dict[str, Any]:
    """Per-game response prefix, reward phase and entropy coefficient.

    The starting point is the authors' maintained code ("SP-B" below) for Brero et al. (2022,
    *Stackelberg POMDP*, §5: 100 response games for complete-information settings).

    Deviations, each measured (one seed, 2 shared cores):

    * the randomised normal-form leader trains without entropy bonus, with a larger step and
      more rows. Its optimum sits just above the follower's indifference point (game 2: row-0
      weight just above 1/3 of row 1's) next to a cliff, so the clipped Gaussian must shrink
      its spread there; on game 2 it reaches 0.91 within 3 M steps, where the SP-B setting
      (entropy 0.01) stalls near 0.84;
    * message SPMs use at least 100 MW iterations (PI: SP-B uses 25), step 1e-3 and entropy
      0.01 (SP-B: 3e-4, 0). After 25 exact iterations the messages are still nearly uniform,
      so even the efficient second-price-like rule scores the best standard SPM's −0.06 in
      some episodes (tested), and PPO settles there; with these settings PI reaches loss 0,
      certified, within 1 M steps;
    * MSGSpace uses entropy 0.05. With SP-B's prices learned by seed 1 at entropy 0.01 (best
      standard SPM, −1/18, all 1 M steps), switching only the categorical *order* head to the
      optimum's (A0 first on messages (0, 0) and (1, 0), A1 first on (0, 1)) gives loss 0
      against the MW response, while every single-entry change stays at −1/18: the stall is
      a coordinated change of a near-deterministic categorical head. At entropy 0.05 both
      seeds 0 and 1 reach loss 0 (certified) at an evaluation within 1 M steps; both drift
      back to −1/18 by the end, so the best certified snapshot is what is returned;
    * matrix design trains for the worst certified response value (``objective``, see
      :class:`StackelbergDesigner`) without entropy bonus. The objective rewards every
      dominance-solvable optimal outcome alike: once one follower's action is dominant by a
      wide margin, the other's off-path transfers no longer move the value. With entropy 0.01
      the leader drifted along that flat direction (600 k steps, seed 0: worst value 1.6587,
      follower 1 dominant, follower 2 only best-responding); without it the returned leader
      makes (1, 0) dominant (300 k steps, seed 0: value 1.6667, worst value 1.656). Seed 1
      (300 k steps, no entropy) still ends dominance-solvable only (follower 1 dominant,
      worst value 1.658): strict dominance for both followers is not implied by the objective.
    """
    name = game.name
    base = {"learning_rate": 3e-4, "num_envs": 16}
    if name.startswith("mspm"):
        k = max(game.n_types)
        its = max(100, 25 if "PI" in name else _MSGSPACE_ITERATIONS.get(k, 75))
        return {"learning_rate": 1e-3, "num_envs": 16, "iterations": its, "reward": "exact",
                "reward_games": 1, "ent_coef": 0.05 if "MSGSpace" in name else 0.01}
    if name.startswith("simple_allocation"):
        return {**base, "iterations": 33, "reward": "sampled", "reward_games": 30,
                "ent_coef": 0.01}
    if isinstance(game, NormalFormGame) and game.randomized:
        return {"learning_rate": 1e-3, "num_envs": 64, "iterations": 33, "reward": "sampled",
                "reward_games": 1, "ent_coef": 0.0}
    if name.startswith("matrix_design"):
        return {**base, "iterations": 33, "reward": "sampled", "reward_games": 1,
                "ent_coef": 0.0, "objective": "worst-certified"}
    return {**base, "iterations": 33, "reward": "sampled", "reward_games": 1, "ent_coef": 0.01}


class _WorstCertifiedReward:
    """The Stackelberg POMDP paying, at each episode end, the worst certified response value.

    The response phase runs unchanged (the followers' MW learning commits the leader's policy on
    every joint action); the reward-phase rewards are replaced by one terminal reward: the
    leader value of the episode's committed policy against the worst certified response
    (:func:`worst_certified_value`). Everything else is the wrapped environment's.
    """

    def __init__(self, inner: BatchedEnv, pomdp: StackelbergPOMDP, game: StackelbergGame,
                 threshold: float) -> None:
        self.inner, self.pomdp, self.game, self.threshold = inner, pomdp, game, threshold

    @property
    def num_envs(self) -> int:
        return self.inner.num_envs

    @property
    def obs_dim(self) -> int:
        return self.inner.obs_dim

    @property
    def critic_obs_dim(self) -> int:
        return self.inner.critic_obs_dim

    @property
    def action_spec(self) -> ActionSpec:
        return self.inner.action_spec

    def reset(self, generator: torch.Generator) -> EnvStep:
        return self.inner.reset(generator)

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        s = self.inner.step(action, generator)
        reward = torch.zeros_like(s.reward)
        if bool(s.done.any()):
            c = self.pomdp.last_commitment
            assert c is not None and bool(s.done.all())  # lockstep episodes end together
            core = self.pomdp.core
            tabs = [core.tabular(c.filled[b], c.categorical[b], c.continuous[b])
                    for b in range(self.num_envs)]
            args = tuple(np.stack([t[k] for t in tabs]) for k in range(len(tabs[0])))
            w = worst_certified_value(payoff_table(self.game, *args), self.threshold)
            reward = torch.as_tensor(w, dtype=s.reward.dtype)
            s.info["objective"] = reward.float()
        return replace(s, reward=reward)


class StackelbergDesigner(Designer):
    """Learn a Stackelberg leader with PPO against multiplicative-weights followers.

    The game is given to :meth:`fit`.

    Parameters
    ----------
    game : str or StackelbergGame, optional
        Deprecated: pass the game to :meth:`fit`.
    followers : {"mw-exact", "mw-sampled", "q-learning"}
        Follower dynamics: exact-expectation MW (ε = 0.1), sampled-reference MW (ε = 0.01), or
        tabular ε-greedy Q-learning (as in the authors' code for Brero et al. 2022, *Stackelberg
        POMDP*: α = 0.15, ε_t = exp(−1e−5 t); the reward phase plays the argmax of the Q-tables, so
        ``response`` must be ``"deterministic"``). With Q-learning, ``iterations`` counts single
        games and defaults to as many games as the exact-MW response phase plays (the game's MW
        iterations times the number of joint follower actions); the exact evaluation is unchanged
        (the MW response certified by the B-CCE check, with the game's default MW iterations), so
        leaders trained against either dynamics are scored by one yardstick.
    critic : {"centralized", "plain"}
        Centralized critic (MAPPO) or plain PPO.
    pomdp : {"stackelberg", "basic"}
        ``"basic"`` hides the response-phase transitions from PPO (ablation).
    steps : int
        Leader-environment steps of training.
    seed : int
        Seeds network initialisation, training and evaluation.
    num_envs : int, optional
        Leader episodes stepped in lockstep (default 16; 64 for randomised normal forms).
    iterations, reward, reward_games, ent_coef : optional
        Response prefix (MW iterations), reward phase (``"sampled"``/``"exact"``), sampled
        reward games and entropy coefficient; default per game (the authors' code for Brero
        et al. 2022, *Stackelberg POMDP*, §5, with measured deviations).
    response : {"deterministic", "last_mixed", "empirical_average"}
        Follower response in the training reward phase.
    objective : {"response", "worst-certified"}, optional
        Training reward: the leader's utility against the followers' learned response (the
        Stackelberg POMDP), or, for complete-information games, one terminal reward per episode: the
        value of the episode's committed policy against the *worst* certified response
        (:func:`worst_certified_value`), the least the leader is guaranteed whatever outcome
        no-regret followers settle on. Default ``"worst-certified"`` for matrix design and
        ``"response"`` elsewhere. Matrix design needs it: the leader reward cannot tell a
        welfare-optimal outcome made dominant (the issue's acceptance; payments of 4 in Brero et al.
        2022, *Stackelberg POMDP*, App. G.2) from transfers that make *both* optimal outcomes
        equilibria, since MW from the uniform start (or from random starts: 100% of 2 000 Dirichlet
        starts, measured) reaches an optimal outcome under either; their worst certified values are
        1.659 (dominance with transfers 10) against 1.26 (the transfers PPO learned against the
        response). Evaluation is unchanged (the MW response, certified).
    learning_rate : float, optional
        Adam step size (default 3e-4; 1e-3 for randomised normal forms).
    update_epochs, num_minibatches : int
        PPO passes and minibatches per rollout (a rollout is one episode per row).
    threshold : float
        B-CCE certification threshold of the evaluations.
    eval_every : int
        Exact evaluation every this many PPO updates (0: only at the end).
    max_seconds : float or None
        Stop training after this wall time.
    threads : int or None
        Torch intra-op threads during :meth:`fit` (restored afterwards); None leaves the
        setting alone. The default 1 is fastest: the tensors are small, and extra threads
        only add synchronisation (measured 10-20x slower on a loaded 2-core machine).

    Attributes
    ----------
    policy_ : ActorCritic
        The returned leader network (the best certified snapshot).
    result_ : StackelbergResult
        Training, the exact evaluation and its certificate.
    history_ : list of (int, float)
        ``(environment steps, exact leader value)`` of the evaluations during training.
    evaluation_ : LeaderEvaluation
        The returned leader's exact evaluation.

    Examples
    --------
    >>> StackelbergDesigner(critic="plain")
    StackelbergDesigner(critic='plain')
    """

    def __init__(
        self,
        game: str | StackelbergGame | None = None,
        *,
        followers: str = "mw-exact",
        critic: str = "centralized",
        pomdp: str = "stackelberg",
        steps: int = 200_000,
        seed: int = 0,
        num_envs: int | None = None,
        iterations: int | None = None,
        reward: str | None = None,
        reward_games: int | None = None,
        ent_coef: float | None = None,
        response: str = "deterministic",
        objective: str | None = None,
        learning_rate: float | None = None,
        update_epochs: int = 4,
        num_minibatches: int = 8,
        threshold: float = 0.05,
        eval_every: int = 10,
        max_seconds: float | None = None,
        threads: int | None = 1,
        **renamed: Any,
    ) -> None:
        self.game = game
        self.followers, self.critic, self.pomdp = followers, critic, pomdp
        self.steps, self.seed, self.num_envs = steps, seed, num_envs
        self.iterations, self.reward, self.reward_games = iterations, reward, reward_games
        self.ent_coef, self.response = ent_coef, response
        self.objective = objective
        self.learning_rate, self.update_epochs = learning_rate, update_epochs
        self.num_minibatches, self.threshold = num_minibatches, threshold
        self.eval_every, self.max_seconds = eval_every, max_seconds
        self.threads = threads
        self._accept_renamed(renamed)
        if game is not None:
            warnings.warn(
                "StackelbergDesigner: pass the game to fit (StackelbergDesigner(**params)"
                ".fit(game)); StackelbergDesigner(game) goes in the next release",
                DeprecationWarning,
                stacklevel=2,
            )

    def _validate(self, problem: Any = None) -> tuple[StackelbergGame, dict[str, Any]]:
        given = self.game if problem is None else problem
        if given is None:
            raise TypeError("StackelbergDesigner: expected a game to fit (a name or a game of "
                            "bilevel.models.stackelberg), got None")
        check_parameters("StackelbergDesigner", self.get_params(deep=False), _RULES)
        game = _to_game(given)
        cfg = _game_defaults(game)
        cfg["eval_iterations"] = cfg["iterations"]
        if self.followers == "q-learning":
            cfg["iterations"] *= math.prod(game.n_actions)
            if self.response != "deterministic":
                raise bad_parameter("StackelbergDesigner", "response",
                                    "as 'deterministic' with Q-learning followers",
                                    self.response)
        cfg.setdefault("objective", "response")
        for k in ("iterations", "reward", "reward_games", "ent_coef", "num_envs",
                  "learning_rate", "objective"):
            v = getattr(self, k)
            if v is not None:
                cfg[k] = v
        if self.followers != "q-learning":
            cfg["eval_iterations"] = cfg["iterations"]
        check_parameters("StackelbergDesigner", {"objective": cfg["objective"]}, _RULES)
        if cfg["objective"] == "worst-certified" and any(t != 1 for t in game.n_types):
            raise ValueError(f"StackelbergDesigner: expected a complete-information game for "
                             f"objective 'worst-certified', got n_types {game.n_types}")
        check_parameters("StackelbergDesigner",
                         {"num_envs": cfg["num_envs"], "learning_rate": cfg["learning_rate"]},
                         _RULES)
        cfg.update(followers=self.followers, critic=self.critic, pomdp=self.pomdp,
                   steps=self.steps, seed=self.seed, response=self.response,
                   learning_rate=float(cfg["learning_rate"]),
                   update_epochs=self.update_epochs, num_minibatches=self.num_minibatches,
                   threshold=float(self.threshold), eval_every=self.eval_every,
                   max_seconds=self.max_seconds)
        return game, cfg

    def fit(self, game: str | StackelbergGame | None = None) -> StackelbergDesigner:
        """Train the leader and evaluate it exactly.

        Parameters
        ----------
        game : str or StackelbergGame
            A game of :mod:`bilevel.models.stackelberg` or its name
            (``"normal_form:game_2:randomized"``, ``"matrix_design"``, ``"simple_allocation:3"``,
            ``"mspm:PI:2"``, ``"mspm:MSGSpace:3:2"``).

        Returns
        -------
        StackelbergDesigner
            ``self``, with ``policy_``, ``result_``, ``history_`` and ``evaluation_``.

        Raises
        ------
        TypeError, ValueError
            For invalid hyperparameters or an unknown game.
        """
        game_, cfg = self._validate(game)
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            self._fit(game_, cfg)
        finally:
            torch.set_num_threads(previous)
        return self

    def save(self, directory: str | Path) -> Path:
        """Save the design (``result.json`` and ``policy.pt``; read by :func:`bilevel.load`).

        Returns
        -------
        pathlib.Path
            The directory.
        """
        self._check_fitted("result_")
        return self.result_.save(directory)

    def _fit(self, game: StackelbergGame, cfg: dict[str, Any]) -> StackelbergResult:
        core: LeaderGameCore = core_from_game(game)
        qlearning = cfg["followers"] == "q-learning"
        flavour: Any = "exact" if qlearning else cfg["followers"].removeprefix("mw-")
        full = StackelbergPOMDP(
            core, cfg["num_envs"], iterations=cfg["iterations"], flavour=flavour,
            reward=cfg["reward"], reward_games=cfg["reward_games"], response=cfg["response"],
            critic=cfg["critic"], followers="q-learning" if qlearning else "mw",
        )
        gen = torch.Generator().manual_seed(cfg["seed"])
        policy = ActorCritic(full.obs_dim, full.critic_obs_dim, full.action_spec,
                             generator=gen)
        env: BatchedEnv = full
        horizon = full.horizon
        if cfg["pomdp"] == "basic":
            hidden = HiddenResponseEnv(full, policy)
            env, horizon = hidden, hidden.horizon
        if cfg["objective"] == "worst-certified":
            env = _WorstCertifiedReward(env, full, game, cfg["threshold"])
        batch = cfg["num_envs"] * horizon
        mb = cfg["num_minibatches"]
        while batch % mb:
            mb -= 1
        ppo = PPOConfig(total_steps=cfg["steps"], num_envs=cfg["num_envs"], num_steps=horizon,
                        update_epochs=cfg["update_epochs"], num_minibatches=mb,
                        learning_rate=cfg["learning_rate"], ent_coef=cfg["ent_coef"],
                        gamma=1.0)

        def evaluate(pol: ActorCritic) -> LeaderEvaluation:
            return evaluate_leader(game, pol, iterations=cfg["eval_iterations"], flavour=flavour,
                                   response=cfg["response"], threshold=cfg["threshold"],
                                   seed=cfg["seed"] + 7919)

        evals: list[tuple[float, LeaderEvaluation]] = []
        # best certified snapshot so far: (value, network state)
        snap: dict[str, Any] = {"value": -math.inf, "state": None, "eval": None}
        start = time.perf_counter()

        def score(e: LeaderEvaluation) -> float:
            # snapshots are ranked by the training objective
            if cfg["objective"] == "worst-certified":
                return float(worst_certified_value(payoff_table(game, *e.table),
                                                   cfg["threshold"])[0])
            return e.value

        def keep(pol: ActorCritic, e: LeaderEvaluation) -> None:
            sc = score(e)
            if e.certified and sc > snap["value"]:
                snap.update(value=sc, state=copy.deepcopy(pol.state_dict()), eval=e)

        def callback(u: PPOUpdate) -> None:
            if cfg["eval_every"] and u.update % cfg["eval_every"] == 0:
                e = evaluate(u.policy)
                evals.append((float(u.env_steps), e))
                keep(u.policy, e)

        res = train_ppo(env, ppo, gen, callback=callback, policy=policy,
                        max_seconds=cfg["max_seconds"])
        final = evaluate(res.policy)
        evals.append((float(res.env_steps), final))
        keep(res.policy, final)
        best: LeaderEvaluation = final if snap["eval"] is None else snap["eval"]
        if snap["eval"] is not None and best is not final:
            res.policy.load_state_dict(snap["state"])
        wall = time.perf_counter() - start
        self.result_ = StackelbergResult(
            game=game.name, config=cfg, value=best.value, bcce_gap=best.gap,
            certified=best.certified, response_kind=best.kind, leader_table=best.table,
            best_value=best.value, best_table=best.table, optimum=game.optimum,
            curve_steps=np.asarray(res.curve_steps, dtype=np.float64),
            curve_objective=np.asarray(res.curve_objective, dtype=np.float64),
            eval_steps=np.array([s for s, _ in evals], dtype=np.float64),
            eval_values=np.array([e.value for _, e in evals], dtype=np.float64),
            eval_gaps=np.array([e.gap for _, e in evals], dtype=np.float64),
            env_steps=res.env_steps, wall_time=wall, steps_per_second=res.steps_per_second,
            message=res.message, policy=res.policy, final_value=final.value,
            worst_value=(score(best) if cfg["objective"] == "worst-certified" else None),
            status=RunStatus(res.status), nit=res.updates,
        )
        self.policy_ = res.policy
        self.history_ = [(int(s), float(e.value)) for s, e in evals]
        self.evaluation_ = best
        return self.result_
