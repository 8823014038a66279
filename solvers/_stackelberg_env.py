"""The Stackelberg POMDP as a batched environment (:class:`~solvers._rl_protocol.BatchedEnv`).

One leader episode (Brero et al., *Stackelberg POMDP*, §4; reference §2.4) is a fixed sequence
of short games (:mod:`solvers._stackelberg_games`), stepped for ``E`` independent episodes in
lockstep:

1. **Response phase** — ``iterations`` whole multiplicative-weights (MW) iterations of the
   followers against the leader's committed policy. Each iteration freezes one type profile
   drawn from the prior and plays one game per *query*:

   * ``flavour="exact"`` (SP-B): every joint follower action profile (``Π_i A_i`` games); each
     follower's update uses the exact expectation ``U_i(a) = Σ_{a_-i} u_i(a, a_-i)
     Π_{j≠i} w_j[t_j, a_j]`` under the pre-update weights; ε = 0.1 by default;
   * ``flavour="sampled"`` (SP-A): one reference profile drawn from the weights, then for each
     follower ``i`` and own action ``a`` the game ``(a, a_-i^ref)`` (``Σ_i A_i`` games);
     ε = 0.01 by default.

   The update is ``w_i[t_i, a] ← w_i[t_i, a] (1+ε)^{U_i(a)}``, then the row is renormalised
   (reset to uniform if it is not finite). Response-phase rewards are 0.
2. **Reward phase** — games against the follower *response*: ``"argmax"`` of the final weights,
   ``"last_mixed"`` (the final weights) or ``"empirical"`` (the uniform mixture of the weights
   after every update, correlated through the common snapshot index). ``reward="sampled"``
   plays ``reward_games`` games with fresh types and sampled actions, each paying
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
weights (rows are probabilities), and one-hot encodings of the current game's types and follower
actions. ``critic="plain"`` gives the critic the actor's observation only.

**Basic POMDP ablation** (``hide_response=True``): every step whose action is taken in the
response phase carries ``info["hidden"] = True``; a learner must execute but not store those
transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from solvers._rl_protocol import Action, ActionSpec, EnvStep
from solvers._stackelberg_games import LeaderGameCore

__all__ = ["Commitment", "StackelbergPOMDP"]

Tensor = torch.Tensor
Flavour = Literal["exact", "sampled"]
Response = Literal["argmax", "last_mixed", "empirical"]


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


def _decode(idx: int, counts: tuple[int, ...]) -> list[int]:
    """Mixed-radix digits of ``idx`` (first position most significant)."""
    out = []
    for k in reversed(counts):
        out.append(idx % k)
        idx //= k
    return out[::-1]


class StackelbergPOMDP:
    """Batched Stackelberg POMDP over one game core (see the module docstring).

    Parameters
    ----------
    core : LeaderGameCore
        The game.
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
    response : {"argmax", "last_mixed", "empirical"}
        Follower response object in the reward phase.
    critic : {"centralized", "plain"}
        Critic input.
    hide_response : bool
        Basic-POMDP ablation flag (``info["hidden"]``).

    Examples
    --------
    >>> from solvers._stackelberg_games import SimpleAllocationCore
    >>> env = StackelbergPOMDP(SimpleAllocationCore(2), 4, iterations=3, reward_games=5)
    >>> env.horizon  # 3 iterations x 2 queries + 5 reward games, 1 step each
    11
    >>> env.reset(torch.Generator().manual_seed(0)).obs.shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        core: LeaderGameCore,
        num_envs: int,
        *,
        iterations: int = 33,
        flavour: Flavour = "exact",
        epsilon: float | None = None,
        reward: Literal["sampled", "exact"] = "sampled",
        reward_games: int = 1,
        response: Response = "argmax",
        critic: Literal["centralized", "plain"] = "centralized",
        hide_response: bool = False,
    ) -> None:
        if not isinstance(core, LeaderGameCore):
            raise TypeError(f"expected a LeaderGameCore, got {type(core).__name__}")
        for name, val, lo in (("num_envs", num_envs, 1), ("iterations", iterations, 1),
                              ("reward_games", reward_games, 1)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"expected {name} to be an int >= {lo}, got {val!r}")
        choices: tuple[tuple[str, object, tuple[str, ...]], ...] = (
            ("flavour", flavour, ("exact", "sampled")),
            ("reward", reward, ("sampled", "exact")),
            ("response", response, ("argmax", "last_mixed", "empirical")),
            ("critic", critic, ("centralized", "plain")),
        )
        for name, choice, allowed in choices:
            if choice not in allowed:
                raise ValueError(f"expected {name} in {allowed}, got {choice!r}")
        eps = (0.1 if flavour == "exact" else 0.01) if epsilon is None else float(epsilon)
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"expected epsilon > 0, got {epsilon!r}")
        self.core, self.E, self.iterations = core, num_envs, iterations
        self.flavour, self.epsilon, self.reward_mode = flavour, eps, reward
        self.response, self.critic, self.hide_response = response, critic, hide_response
        self.n = core.n_followers
        self.A, self.K = core.action_counts, core.type_counts
        self.Amax, self.Kmax = max(self.A), max(self.K)
        self.queries = math.prod(self.A) if flavour == "exact" else sum(self.A)
        self.n_response_games = iterations * self.queries
        self.n_reward_games = (
            math.prod(self.K) * math.prod(self.A) if reward == "exact" else reward_games
        )
        self.H = core.horizon
        self.horizon = (self.n_response_games + self.n_reward_games) * self.H
        self._valid = torch.zeros(self.n, self.Kmax, self.Amax, dtype=torch.bool)
        self._prior = torch.zeros(self.n, self.Kmax, dtype=torch.float64)
        for i in range(self.n):
            self._valid[i, : self.K[i], : self.A[i]] = True
            self._prior[i, : self.K[i]] = core.priors[i]
        self._aspec = core.action_spec
        self._crit_extra = 2 + self.n * (self.Kmax * self.Amax + self.Kmax + self.Amax)
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
    def weights(self) -> Tensor:
        """Current MW weights, shape (E, n, Kmax, Amax); rows are probabilities (0-padded)."""
        return self._W

    # -- episode bookkeeping -------------------------------------------------------------
    def _new_episode(self, gen: torch.Generator) -> None:
        E, n = self.E, self.n
        W = self._valid.float() / self._valid.float().sum(-1, keepdim=True).clamp_min(1)
        self._W = W.expand(E, n, self.Kmax, self.Amax).clone()
        self._snaps: list[Tensor] = []
        self._k = 0
        self._ret = torch.zeros(E)
        nc, nx = len(self._aspec.categorical), self._aspec.continuous
        self._filled = torch.zeros(E, self.core.n_keys, dtype=torch.bool)
        self._ccat = torch.zeros(E, self.core.n_keys, nc, dtype=torch.long)
        self._ccon = torch.zeros(E, self.core.n_keys, nx)
        self._util = torch.zeros(E, self.queries, n)
        self._start_game(0, gen)

    def _sample_types(self, gen: torch.Generator) -> Tensor:
        cols = [torch.multinomial(self._prior[i, : self.K[i]].float().expand(self.E, -1), 1,
                                  generator=gen)[:, 0] for i in range(self.n)]
        return torch.stack(cols, 1)

    def _probs(self, W: Tensor, types: Tensor) -> Tensor:
        """Each follower's mixed action at its type: (E, n, Amax)."""
        idx = types[:, :, None, None].expand(-1, -1, 1, self.Amax)
        return W.gather(2, idx)[:, :, 0]

    def _start_game(self, g: int, gen: torch.Generator) -> None:
        E = self.E
        if g < self.n_response_games:
            q = g % self.queries
            if q == 0:
                self._types = self._sample_types(gen)
                if self.flavour == "sampled":
                    p = self._probs(self._W, self._types)
                    self._ref = torch.stack(
                        [torch.multinomial(p[:, i], 1, generator=gen)[:, 0] for i in range(self.n)],
                        1)
            if self.flavour == "exact":
                acts = torch.tensor(_decode(q, self.A)).expand(E, -1).clone()
            else:
                i, a = 0, q
                while a >= self.A[i]:
                    a -= self.A[i]
                    i += 1
                acts = self._ref.clone()
                acts[:, i] = a
            self._acts = acts
            self._weight = torch.zeros(E)
        else:
            r = g - self.n_response_games
            if r == 0:
                self._resp = self._response_snapshots()
            if self.reward_mode == "exact":
                digits = _decode(r, self.K + self.A)
                self._types = torch.tensor(digits[: self.n]).expand(E, -1).clone()
                self._acts = torch.tensor(digits[self.n:]).expand(E, -1).clone()
                pt = math.prod(float(self.core.priors[i][digits[i]]) for i in range(self.n))
                self._weight = pt * self._joint_prob(self._types, self._acts)
            else:
                self._types = self._sample_types(gen)
                S = self._resp.shape[1]
                s = torch.randint(S, (E,), generator=gen)
                p = self._probs(self._resp[torch.arange(E), s], self._types)
                self._acts = torch.stack(
                    [torch.multinomial(p[:, i], 1, generator=gen)[:, 0] for i in range(self.n)], 1)
                self._weight = torch.full((E,), 1.0 / self.n_reward_games)
        self._g = self.core.start(self._types, self._acts)

    def _response_snapshots(self) -> Tensor:
        """Response as a uniform mixture of product strategies: (E, S, n, Kmax, Amax)."""
        if self.response == "empirical":
            return torch.stack(self._snaps, 1)
        if self.response == "last_mixed":
            return self._W[:, None].clone()
        Wm = self._W.masked_fill(~self._valid, -1.0)
        best = torch.nn.functional.one_hot(Wm.argmax(-1), self.Amax).float()
        return best[:, None]

    def _joint_prob(self, types: Tensor, acts: Tensor) -> Tensor:
        """P(acts | types) under the response: (E,)."""
        R = self._resp  # (E, S, n, Kmax, Amax)
        prod = torch.ones(R.shape[:2])
        for i in range(self.n):
            prod = prod * R[:, :, i, types[0, i], acts[0, i]]
        return prod.mean(1)

    def _mw_update(self) -> None:
        E, n = self.E, self.n
        rows = torch.arange(E)
        if self.flavour == "exact":
            u = self._util.reshape(E, *self.A, n)
            p = self._probs(self._W, self._types)
            U = []
            for i in range(n):
                w = torch.ones(E, *self.A)
                for j in range(n):
                    if j != i:
                        shape = [E] + [1] * n
                        shape[1 + j] = self.A[j]
                        w = w * p[:, j, : self.A[j]].reshape(shape)
                dims = tuple(1 + j for j in range(n) if j != i)
                Ui = (u[..., i] * w).sum(dims) if dims else u[..., i] * w
                U.append(Ui)
        else:
            U, off = [], 0
            for i in range(n):
                U.append(self._util[:, off: off + self.A[i], i])
                off += self.A[i]
        for i in range(n):
            t = self._types[:, i]
            row = self._W[rows, i, t, : self.A[i]] * (1.0 + self.epsilon) ** U[i]
            s = row.sum(1, keepdim=True)
            ok = torch.isfinite(s) & (s > 0)
            row = torch.where(ok, row / s.clamp_min(1e-30), torch.full_like(row, 1 / self.A[i]))
            self._W[rows, i, t, : self.A[i]] = row
        if self.response == "empirical":
            self._snaps.append(self._W.clone())

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
            crit = torch.cat([obs, flag, prog, self._W.flatten(1), ty, ac], 1)
        return EnvStep(obs=obs, critic_obs=crit, masks=masks, reward=reward, done=done,
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
        reward = torch.zeros(E)
        in_response = g < self.n_response_games
        if t == self.H - 1:
            lead, fol = self.core.payoffs(self._g)
            if in_response:
                q = g % self.queries
                self._util[:, q] = fol
                if q == self.queries - 1:
                    self._mw_update()
            else:
                reward = self._weight * lead
        self._ret = self._ret + reward
        info: dict[str, Tensor] = {}
        if self.hide_response:
            info["hidden"] = torch.full((E,), in_response)
        self._k += 1
        done = torch.full((E,), self._k == self.horizon)
        if self._k == self.horizon:
            info["objective"] = self._ret.clone()
            self.last_commitment = Commitment(self._filled, self._ccat, self._ccon)
            self._new_episode(generator)
        elif t == self.H - 1:
            self._start_game(g + 1, generator)
        return self._emit(reward, done, executed, info)
