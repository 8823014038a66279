"""The Stackelberg POMDP as a batched environment (:class:`~bilevel.solvers.rl.BatchedEnv`).

One leader episode (Brero et al., *Stackelberg POMDP*, §4, Definition 4.1; the layout of the
authors' code revision SP-B, ``docs/references.md``) is a fixed sequence of short games
(:mod:`bilevel.solvers.stackelberg._cores`), stepped for ``E`` independent episodes in lockstep:

1. **Response phase** — ``iterations`` whole multiplicative-weights (MW) iterations of the
   followers against the leader's committed policy. Each iteration freezes one type profile
   drawn from the prior and plays one game per *query*:

   * ``flavour="exact"`` (SP-B): every joint follower action profile (``Π_i A_i`` games); each
     follower's update uses the exact expectation ``U_i(a) = Σ_{a_-i} u_i(a, a_-i)
     Π_{j≠i} w_j[t_j, a_j]`` under the pre-update weights; ε = 0.1 by default;
   * ``flavour="sampled"`` (SP-A): one reference profile drawn from the weights, then for each
     follower ``i`` and own action ``a`` the game ``(a, a_-i^ref)`` (``Σ_i A_i`` games);
     ε = 0.01 by default.

   The update is ``w_i[t_i, a] ← w_i[t_i, a] (1+ε)^{U_i(a)}``
   (:class:`bilevel.solvers.stackelberg.MultiplicativeWeights`). Response-phase rewards are 0.

   With ``followers="q-learning"`` (Q-learning followers, which the paper's §3 allows for) the
   response phase is ``iterations`` single games instead: each draws a fresh type profile from
   the prior, the followers pick ε-greedy actions from their Q-tables, the leader plays, and every
   follower updates the entry it took (:class:`bilevel.solvers.stackelberg.QLearningFollowers`;
   α = 0.15, ε_t = exp(−β t) with β = 1e−5 by default, ``t`` = games so far in the episode).
   The reward phase then plays against the argmax of the Q-tables (``response`` must be
   ``"deterministic"``), and the critic sees the normalised Q-tables and ε_t instead of the
   MW weights.
2. **Reward phase** — games against the follower *response*: ``"deterministic"`` (argmax of
   the final weights), ``"last_mixed"`` (the final mixed strategies) or ``"empirical_average"``
   (the uniform mixture of the strategies after every update, correlated through the common
   snapshot index). ``reward="sampled"`` plays ``reward_games`` games with fresh types and
   actions sampled from the response, each paying
   ``leader utility / reward_games``; ``reward="exact"`` plays every (type profile × joint
   action) pair once, paying ``P(types) P(actions | types) · leader utility``. Either way the
   episode return is the leader's expected utility per game against the response.

There are no dummy steps: every step is a leader decision in some game, and the episode has
exactly ``(iterations · queries + reward games) · horizon`` steps in every row.

**Commitment.** The environment keeps, per row, a map from the observation key of the core to
the first action taken on it in the episode. A later proposal on the same observation is
replaced by the stored action and reported in :attr:`EnvStep.executed`. The map is cleared
when the episode ends, *before* the first action of the next one; the map of the last finished
episode stays readable as :attr:`StackelbergPOMDP.last_commitment`, so an evaluation episode
run with deterministic actions yields the committed leader policy it was scored with.

**Critic features** (``critic="centralized"``): after the actor's observation, the phase flag
(1 iff the coming action is in the reward phase), the episode progress, every follower's MW
weights (each follower's block divided by its largest weight), and one-hot encodings of the
current game's types and follower actions. ``critic="plain"`` gives the critic the actor's
observation only.

**Basic POMDP ablation** (``hide_response=True``): every step whose action is taken in the
response phase carries ``info["hidden"] = True``; a learner must execute but not store those
transitions (:class:`bilevel.solvers.stackelberg.HiddenResponseEnv` does this for a PPO that
stores every step).

Not done here: SP-B's in-episode certification (extending the response phase until a
candidate response passes the B-CCE check) would need the leader's policy on observations not
yet visited; the designer certifies at evaluation instead (:mod:`bilevel.stackelberg._evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._protocol import Action, ActionSpec, EnvStep
from bilevel.solvers.stackelberg._cores import LeaderGameCore, core_from_game
from bilevel.solvers.stackelberg._no_regret import (
    RESPONSE_KINDS,
    MultiplicativeWeights,
    ResponseKind,
)
from bilevel.solvers.stackelberg._qlearning import QLearningFollowers

__all__ = ["Commitment", "HiddenResponseEnv", "StackelbergPOMDP"]

Tensor = torch.Tensor
Flavour = Literal["exact", "sampled"]


@dataclass(frozen=True)
class Commitment:
    """A committed leader policy: the action taken on each observation key in one episode.

    Attributes
    ----------
    filled : Tensor, shape (E, n_keys), bool
        Whether the key was visited.
    categorical : Tensor, shape (E, n_keys, n_cat), int64
    continuous : Tensor, shape (E, n_keys, n_cont), float
        Raw (unclipped) committed actions; meaningful where ``filled``.
    """

    filled: Tensor
    categorical: Tensor
    continuous: Tensor


class StackelbergPOMDP:
    """Batched Stackelberg POMDP over one game (see the module docstring).

    Parameters
    ----------
    game : LeaderGameCore or bilevel.models.stackelberg.StackelbergGame
        The game (a game of :mod:`bilevel.models.stackelberg` is converted by
        :func:`core_from_game`).
    num_envs : int
        Number of episodes ``E`` stepped in lockstep.
    iterations : int
        Whole MW iterations in the response phase.
    flavour : {"exact", "sampled"}
        MW flavour.
    epsilon : float or None
        MW step; None: 0.1 (exact) or 0.01 (sampled).
    reward : {"sampled", "exact"}
        Reward-phase mode.
    reward_games : int
        Number of sampled reward games (ignored when exact).
    response : {"deterministic", "last_mixed", "empirical_average"}
        Follower response object in the reward phase.
    critic : {"centralized", "plain"}
        Critic input.
    hide_response : bool
        Basic-POMDP ablation flag (``info["hidden"]``).
    followers : {"mw", "q-learning"}
        Follower dynamics: multiplicative weights (``flavour``, ``epsilon``) or tabular
        Q-learning (``iterations`` games; ``q_alpha``, ``q_beta``).
    q_alpha, q_beta : float
        Q-learning rate α and exploration decay β (ignored for MW).

    Raises
    ------
    TypeError, ValueError
        For an unknown game or option.

    Examples
    --------
    >>> from bilevel.solvers.stackelberg._cores import SimpleAllocationCore
    >>> env = StackelbergPOMDP(SimpleAllocationCore(2), 4, iterations=3, reward_games=5)
    >>> env.horizon  # 3 iterations x 2 queries + 5 reward games, 1 step each
    11
    >>> env.reset(torch.Generator().manual_seed(0)).obs.shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        game: object,
        num_envs: int,
        *,
        iterations: int = 33,
        flavour: Flavour = "exact",
        epsilon: float | None = None,
        reward: Literal["sampled", "exact"] = "sampled",
        reward_games: int = 1,
        response: ResponseKind = "deterministic",
        critic: Literal["centralized", "plain"] = "centralized",
        hide_response: bool = False,
        followers: Literal["mw", "q-learning"] = "mw",
        q_alpha: float = 0.15,
        q_beta: float = 1e-5,
    ) -> None:
        core = game if isinstance(game, LeaderGameCore) else core_from_game(game)
        for name, val, lo in (("num_envs", num_envs, 1), ("iterations", iterations, 1),
                              ("reward_games", reward_games, 1)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"expected {name} to be an int >= {lo}, got {val!r}")
        choices: tuple[tuple[str, object, tuple[str, ...]], ...] = (
            ("flavour", flavour, ("exact", "sampled")),
            ("reward", reward, ("sampled", "exact")),
            ("response", response, RESPONSE_KINDS),
            ("critic", critic, ("centralized", "plain")),
            ("followers", followers, ("mw", "q-learning")),
        )
        for name, choice, allowed in choices:
            if choice not in allowed:
                raise ValueError(f"expected {name} in {allowed}, got {choice!r}")
        self.core, self.E, self.iterations = core, num_envs, iterations
        self.reward_mode, self.response = reward, response
        self.critic, self.hide_response = critic, bool(hide_response)
        if followers == "q-learning" and response != "deterministic":
            raise ValueError(f"expected response='deterministic' with Q-learning followers "
                             f"(the argmax of the Q-tables), got {response!r}")
        self.followers = followers
        self.mw = MultiplicativeWeights(
            core.type_counts, core.action_counts, batch=num_envs, flavour=flavour,
            epsilon=epsilon, record_history=response == "empirical_average",
        )
        self.ql: QLearningFollowers | None = None
        if followers == "q-learning":
            self.ql = QLearningFollowers(core.type_counts, core.action_counts, batch=num_envs,
                                         alpha=q_alpha, beta=q_beta)
        self.flavour, self.epsilon = flavour, self.mw.epsilon
        self.n = core.n_followers
        self.A, self.K = core.action_counts, core.type_counts
        self.Amax, self.Kmax = max(self.A), max(self.K)
        self.queries = 1 if self.ql is not None else self.mw.n_queries
        self.n_response_games = iterations * self.queries
        self._profiles = torch.cartesian_prod(
            *[torch.arange(k) for k in self.K]).reshape(-1, self.n)
        self._profile_prob = torch.ones(self._profiles.shape[0], dtype=torch.float64)
        for i in range(self.n):
            self._profile_prob = self._profile_prob * core.priors[i][self._profiles[:, i]]
        self._joints = torch.cartesian_prod(
            *[torch.arange(a) for a in self.A]).reshape(-1, self.n)
        self.n_reward_games = (
            self._profiles.shape[0] * self._joints.shape[0] if reward == "exact" else reward_games
        )
        self.H = core.horizon
        self.horizon = (self.n_response_games + self.n_reward_games) * self.H
        self._aspec = core.action_spec
        n_weights = sum(k * a for k, a in zip(self.K, self.A, strict=True))
        n_weights += int(self.ql is not None)  # the exploration rate ε_t
        self._crit_extra = 2 + n_weights + self.n * (self.Kmax + self.Amax)
        self.last_commitment: Commitment | None = None

    # -- protocol properties -------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self.E

    @property
    def obs_dim(self) -> int:
        """Length of the actor's observation (the core's)."""
        return self.core.obs_dim

    @property
    def critic_obs_dim(self) -> int:
        """Length of the critic's observation."""
        return self.core.obs_dim + (self._crit_extra if self.critic == "centralized" else 0)

    @property
    def action_spec(self) -> ActionSpec:
        """The leader's action space (the core's)."""
        return self._aspec

    @property
    def in_response(self) -> bool:
        """Whether the next action is taken in the response phase."""
        return self._k // self.H < self.n_response_games

    # -- episode bookkeeping -------------------------------------------------------------
    def _new_episode(self, gen: torch.Generator) -> None:
        E = self.E
        if self.ql is not None:
            self.ql.reset()
        else:
            self.mw.reset()
        self._k = 0
        self._ret = torch.zeros(E, dtype=torch.float64)
        nc, nx = len(self._aspec.categorical), self._aspec.continuous
        self._filled = torch.zeros(E, self.core.n_keys, dtype=torch.bool)
        self._ccat = torch.zeros(E, self.core.n_keys, nc, dtype=torch.long)
        self._ccon = torch.zeros(E, self.core.n_keys, nx)
        self._util = torch.zeros(E, self.queries, self.n, dtype=torch.float64)
        self._start_game(0, gen)

    def _sample_profiles(self, gen: torch.Generator) -> Tensor:
        """Type-profile index of each row drawn from the prior: (E,)."""
        p = self._profile_prob.expand(self.E, -1)
        return torch.multinomial(p, 1, replacement=True, generator=gen)[:, 0]

    def _start_game(self, g: int, gen: torch.Generator) -> None:
        E = self.E
        if g < self.n_response_games:
            q = g % self.queries
            if self.ql is not None:
                self._types = self._profiles[self._sample_profiles(gen)]
                self._queries = self.ql.act(self._types, gen)[:, None]  # (E, 1, n)
            elif q == 0:
                self._types = self._profiles[self._sample_profiles(gen)]
                self._queries = self.mw.queries(self._types, gen)  # (E, Q, n)
            self._acts = self._queries[:, q]
            self._weight = torch.zeros(E, dtype=torch.float64)
        else:
            r = g - self.n_response_games
            if r == 0:
                resp = (self.ql.response() if self.ql is not None
                        else self.mw.response(self.response))
                self._resp_probs = resp.joint_action_probs(self._profiles)  # (E, K, J)
            rows = torch.arange(E)
            if self.reward_mode == "exact":
                k, j = divmod(r, self._joints.shape[0])
                prof = torch.full((E,), k)
                joint = torch.full((E,), j)
                self._weight = self._profile_prob[k] * self._resp_probs[:, k, j]
            else:
                prof = self._sample_profiles(gen)
                joint = torch.multinomial(self._resp_probs[rows, prof], 1,
                                          generator=gen)[:, 0]
                self._weight = torch.full((E,), 1.0 / self.n_reward_games, dtype=torch.float64)
            self._types, self._acts = self._profiles[prof], self._joints[joint]
        self._g = self.core.start(self._types, self._acts)

    # -- observations ----------------------------------------------------------------------
    def _emit(self, reward: Tensor, done: Tensor, executed: Action | None,
              info: dict[str, Tensor]) -> EnvStep:
        t = self._k % self.H
        obs, key, masks = self.core.observe(self._g, t)
        self._key = key
        crit = obs
        if self.critic == "centralized":
            E = self.E
            flag = torch.full((E, 1), float(self._k // self.H >= self.n_response_games))
            prog = torch.full((E, 1), self._k / self.horizon)
            ty = torch.nn.functional.one_hot(self._types, self.Kmax).flatten(1).float()
            ac = torch.nn.functional.one_hot(self._acts, self.Amax).flatten(1).float()
            w = (self.ql if self.ql is not None else self.mw).critic_features().float()
            crit = torch.cat([obs, flag, prog, w, ty, ac], 1)
        return EnvStep(obs=obs, critic_obs=crit, masks=masks, reward=reward.float(), done=done,
                       executed=executed, info=info)

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start a new episode in every row (types drawn with ``generator``)."""
        self._new_episode(generator)
        return self._emit(torch.zeros(self.E), torch.zeros(self.E, dtype=torch.bool), None, {})

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Apply one leader action per row (commitment enforced); see the module docstring.

        Parameters
        ----------
        action : Action
            Proposals: ``categorical`` (E, n_cat) int64, ``continuous`` (E, n_cont).
        generator : torch.Generator
            Draws types and follower actions.

        Returns
        -------
        EnvStep
            ``info["objective"]`` (E,) at episode ends; ``info["hidden"]`` (E,) in the ablation.
        """
        if not hasattr(self, "_k"):
            raise ValueError("expected reset() before step(), got step() first")
        E, spec = self.E, self._aspec
        cat, con = action.categorical, action.continuous
        if tuple(cat.shape) != (E, len(spec.categorical)) or tuple(con.shape) != (
            E, spec.continuous
        ):
            raise ValueError(
                f"expected action shapes ({E}, {len(spec.categorical)}) and ({E}, "
                f"{spec.continuous}), got {tuple(cat.shape)} and {tuple(con.shape)}"
            )
        # commitment: reuse the action stored for this observation, else store the proposal
        rows, key = torch.arange(E), self._key
        hit = self._filled[rows, key]
        cat = torch.where(hit[:, None], self._ccat[rows, key], cat.long())
        con = torch.where(hit[:, None], self._ccon[rows, key], con.float())
        self._ccat[rows, key], self._ccon[rows, key] = cat, con
        self._filled[rows, key] = True
        executed = Action(cat, con) if bool(hit.any()) else None

        g, t = divmod(self._k, self.H)
        self._g = self.core.advance(self._g, t, Action(cat, con.clamp(spec.low, spec.high)))
        reward = torch.zeros(E, dtype=torch.float64)
        in_response = g < self.n_response_games
        if t == self.H - 1:
            lead, fol = self.core.payoffs(self._g)
            if in_response and self.ql is not None:
                self.ql.update(self._types, self._acts, fol.double())
            elif in_response:
                q = g % self.queries
                self._util[:, q] = fol.double()
                if q == self.queries - 1:
                    self.mw.update(self._types, self._util)
            else:
                reward = self._weight * lead.double()
        self._ret = self._ret + reward
        info: dict[str, Tensor] = {}
        if self.hide_response:
            info["hidden"] = torch.full((E,), in_response)
        self._k += 1
        done = torch.full((E,), self._k == self.horizon)
        if self._k == self.horizon:
            info["objective"] = self._ret.float()
            self.last_commitment = Commitment(self._filled, self._ccat, self._ccon)
            self._new_episode(generator)
        elif t == self.H - 1:
            self._start_game(g + 1, generator)
        return self._emit(reward, done, executed, info)


class HiddenResponseEnv:
    """A :class:`~bilevel.solvers.rl.BatchedEnv` showing only the reward phase.

    Parameters
    ----------
    env : StackelbergPOMDP
        The full environment.
    policy : ActorCritic
        The network being trained; it acts (stochastically) in the hidden response phase.

    Raises
    ------
    TypeError
        For a wrong environment or policy type.
    """

    def __init__(self, env: StackelbergPOMDP, policy: ActorCritic) -> None:
        if not isinstance(env, StackelbergPOMDP):
            raise TypeError(f"expected a StackelbergPOMDP, got {type(env).__name__}")
        if not isinstance(policy, ActorCritic):
            raise TypeError(f"expected an ActorCritic, got {type(policy).__name__}")
        self.env, self.policy = env, policy
        self.horizon = env.n_reward_games * env.H

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self.env.num_envs

    @property
    def obs_dim(self) -> int:
        """Length of the actor's observation."""
        return self.env.obs_dim

    @property
    def critic_obs_dim(self) -> int:
        """Length of the critic's observation."""
        return self.env.critic_obs_dim

    @property
    def action_spec(self) -> ActionSpec:
        """The leader's action space."""
        return self.env.action_spec

    def _play_response(self, step: EnvStep, generator: torch.Generator) -> EnvStep:
        while self.env.in_response:
            dev = next(self.policy.parameters()).device
            act = self.policy.act(step.obs.to(dev), [m.to(dev) for m in step.masks],
                                  deterministic=False, generator=generator)
            step = self.env.step(Action(act.categorical.cpu(), act.continuous.cpu()),
                                 generator)
        return step

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start new episodes and play their response phases; the first reward-phase step."""
        return self._play_response(self.env.reset(generator), generator)

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """One reward-phase step; at an episode end the next response phase is played too."""
        s = self.env.step(action, generator)
        if not bool(s.done.any()):
            return s
        nxt = self._play_response(s, generator)
        return EnvStep(obs=nxt.obs, critic_obs=nxt.critic_obs, masks=nxt.masks,
                       reward=s.reward, done=s.done, executed=s.executed, info=s.info)
