"""``StackelbergGymEnv``: one Stackelberg POMDP episode at a time behind the gymnasium API.

Other RL libraries (Stable-Baselines3, as in the Stackelberg POMDP papers' own stack) step one
episode at a time through ``gymnasium.Env``. This module gives them the same leader POMDP as
:class:`~bilevel.solvers.stackelberg.StackelbergPOMDP`: it *is* that environment with one row
(no second implementation of the dynamics), so the response phase (follower learning against
the committed leader), the commitment cache and the reward phase are identical.

Action encoding (:func:`gym_action_space`, :func:`decode_actions`), by the leader's
:class:`~bilevel.solvers.rl.ActionSpec`:

* one categorical head, no continuous part: ``Discrete(k)``;
* several categorical heads only: ``MultiDiscrete((k_1, ..., k_H))``;
* continuous only: ``Box(0, 1, (c,))``;
* both (message SPM: which agent, at which price): the SPM paper's encoding (Brero et al.
  (2021), "Experimental Results"), a ``Box`` in ``[0, 1]`` of one score per choice of every
  head followed by the ``c`` continuous coordinates; each head takes its highest-scoring
  *legal* choice, so no action is invalid.

Continuous coordinates are normalised: ``x ∈ [0, 1]`` stands for ``low + (high − low) x``
(matrix-design transfers live in ``[0, 10]``; gymnasium and SB3 want ``[0, 1]`` boxes).

A discrete choice that the current mask forbids is replaced by the head's first legal choice (no
game of :mod:`bilevel.models.stackelberg` masks a discrete-only head, so this never happens there).

Seeding: ``reset(seed=s)`` seeds gymnasium's ``np_random`` and draws the torch seed of the
POMDP's generator as ``int(np_random.integers(0, 2**62))``. The POMDP starts its next episode
inside the step that ends the current one (auto-reset); ``reset()`` without a seed returns that
already-started episode, so consecutive episodes are exactly those of the batched environment
stepped with the same generator (tested).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from gymnasium import spaces

from bilevel.solvers.rl._protocol import Action, ActionSpec, EnvStep
from bilevel.solvers.stackelberg._cores import core_from_game
from bilevel.solvers.stackelberg._pomdp import StackelbergPOMDP

__all__ = ["StackelbergGymEnv", "decode_actions", "gym_action_space"]

ObsType = npt.NDArray[np.float32]
Tensor = torch.Tensor


def gym_action_space(spec: ActionSpec) -> spaces.Space[Any]:
    """The gymnasium action space encoding a leader's :class:`ActionSpec`.

    Parameters
    ----------
    spec : ActionSpec

    Returns
    -------
    gymnasium.spaces.Space
        ``Discrete``, ``MultiDiscrete`` or ``Box`` (see the module docstring).

    Examples
    --------
    >>> gym_action_space(ActionSpec(categorical=(3,)))
    Discrete(3)
    >>> gym_action_space(ActionSpec(categorical=(2,), continuous=1)).shape
    (3,)
    """
    cat, c = spec.categorical, spec.continuous
    if c == 0:
        return spaces.Discrete(cat[0]) if len(cat) == 1 else spaces.MultiDiscrete(list(cat))
    return spaces.Box(0.0, 1.0, shape=(sum(cat) + c,), dtype=np.float32)


def _first_legal(choice: Tensor, mask: Tensor) -> Tensor:
    legal = mask.gather(1, choice[:, None])[:, 0]
    return torch.where(legal, choice, mask.long().argmax(1))


def decode_actions(spec: ActionSpec, actions: Any, masks: tuple[Tensor, ...]) -> Action:
    """Turn a batch of gymnasium actions into leader :class:`Action` s.

    Parameters
    ----------
    spec : ActionSpec
        The leader's action space.
    actions : array_like
        Shape (E,) for ``Discrete``, (E, H) for ``MultiDiscrete``, (E, D) for ``Box``
        (:func:`gym_action_space`).
    masks : tuple of Tensor, each shape (E, k_h), bool
        Legal choices of each categorical head.

    Returns
    -------
    Action
        ``categorical`` (E, H) int64 and ``continuous`` (E, c) float32, mapped from
        ``[0, 1]`` to ``[low, high]`` (unclipped; the POMDP clips).

    Raises
    ------
    ValueError
        If the actions do not have the encoding's shape.

    Examples
    --------
    >>> spec = ActionSpec(categorical=(2,), continuous=1)
    >>> a = decode_actions(spec, [[0.9, 0.1, 0.4]], (torch.tensor([[False, True]]),))
    >>> a.categorical.tolist(), [round(x, 2) for x in a.continuous[0].tolist()]
    ([[1]], [0.4])
    """
    cat, c = spec.categorical, spec.continuous
    E = masks[0].shape[0] if masks else None
    arr = np.asarray(actions)
    if c == 0:
        want: tuple[int, ...] = (arr.shape[0],) if len(cat) == 1 else (arr.shape[0], len(cat))
        if arr.ndim == 0 or arr.shape != want or (E is not None and arr.shape[0] != E):
            raise ValueError(f"expected discrete actions of shape ({E}, {len(cat)}) or ({E},), "
                             f"got {arr.shape}")
        idx = torch.as_tensor(arr.astype(np.int64)).reshape(arr.shape[0], len(cat))
        if bool(((idx < 0) | (idx >= torch.tensor(cat))).any()):
            raise ValueError(f"expected choices in [0, {cat}), got {idx.tolist()}")
        heads = [_first_legal(idx[:, h], masks[h]) for h in range(len(cat))]
        return Action(torch.stack(heads, 1), torch.zeros(idx.shape[0], 0))
    n_scores = sum(cat)
    if arr.ndim != 2 or arr.shape[1] != n_scores + c or (E is not None and arr.shape[0] != E):
        raise ValueError(f"expected Box actions of shape (E, {n_scores + c}), got {arr.shape}")
    x = torch.as_tensor(arr.astype(np.float64))
    heads, o = [], 0
    for h, k in enumerate(cat):
        scores = x[:, o:o + k].masked_fill(~masks[h], -torch.inf)
        heads.append(scores.argmax(1))
        o += k
    categorical = (torch.stack(heads, 1) if heads
                   else torch.zeros(x.shape[0], 0, dtype=torch.long))
    cont = spec.low + (spec.high - spec.low) * x[:, n_scores:]
    return Action(categorical, cont.float())


class StackelbergGymEnv(gym.Env[ObsType, Any]):
    """A single-episode gymnasium environment of the Stackelberg POMDP.

    Parameters
    ----------
    game : LeaderGameCore, bilevel.models.stackelberg.StackelbergGame or str
        The game (as :class:`~bilevel.solvers.stackelberg.StackelbergPOMDP` takes it; a name is
        built with :func:`bilevel.solvers.stackelberg.core_from_game`).
    **options
        Keyword options of :class:`~bilevel.solvers.stackelberg.StackelbergPOMDP` (``iterations``,
        ``flavour``, ``epsilon``, ``reward``, ``reward_games``, ``response``, ``followers``,
        ...), except ``num_envs`` and ``critic`` (one row; the actor's observation only).

    Attributes
    ----------
    pomdp : StackelbergPOMDP
        The underlying batched environment with one row.
    horizon : int
        Leader steps per episode.

    Notes
    -----
    ``info`` carries ``"in_response"`` (whether the *next* action is taken in the response
    phase), ``"committed"`` (whether the step's proposal was replaced by the committed action)
    and, at the end of an episode, ``"objective"`` (the episode's leader value per game).

    Examples
    --------
    >>> env = StackelbergGymEnv("simple_allocation:1", iterations=2, reward_games=1)
    >>> obs, info = env.reset(seed=0)
    >>> env.horizon, env.action_space
    (3, Discrete(3))
    >>> for _ in range(3):
    ...     obs, r, terminated, truncated, info = env.step(0)
    >>> terminated, info["objective"] in (0.0, 1.0)
    (True, True)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(self, game: object, **options: Any) -> None:
        super().__init__()
        for bad in ("num_envs", "critic"):
            if bad in options:
                raise ValueError(f"expected no {bad!r} option (one row, plain observation), "
                                 f"got {bad}={options[bad]!r}")
        if isinstance(game, str):
            game = core_from_game(game)
        self.pomdp = StackelbergPOMDP(game, 1, critic="plain", **options)
        self.horizon = self.pomdp.horizon
        self.spec_ = self.pomdp.action_spec
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.pomdp.obs_dim,),
                                            dtype=np.float32)
        self.action_space = gym_action_space(self.spec_)
        self._torch_gen: torch.Generator | None = None
        self._last: EnvStep | None = None
        self._fresh = False  # the POMDP has started an episode no step has touched yet
        self._active = False

    def _obs(self, s: EnvStep) -> ObsType:
        return np.clip(s.obs[0].numpy().astype(np.float32), 0.0, 1.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode (the already-started one when no seed is given; see above).

        Parameters
        ----------
        seed : int, optional
        options : dict, optional
            Unused.

        Returns
        -------
        obs : ndarray, shape (obs_dim,), float32
        info : dict
        """
        super().reset(seed=seed)
        if seed is not None or self._torch_gen is None:
            self._torch_gen = torch.Generator().manual_seed(
                int(self.np_random.integers(0, 2**62)))
            self._fresh = False
        if not self._fresh or self._last is None:
            self._last = self.pomdp.reset(self._torch_gen)
        self._fresh, self._active = False, True
        return self._obs(self._last), {"in_response": self.pomdp.in_response}

    def step(self, action: Any) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """One leader step.

        Parameters
        ----------
        action : int or ndarray
            An element of :attr:`action_space`.

        Returns
        -------
        obs, reward, terminated, truncated, info
            ``reward`` is the leader's (probability- or ``1/R``-weighted) utility of a finished
            reward-phase game, else 0.
        """
        if not self._active or self._last is None or self._torch_gen is None:
            raise ValueError("expected reset() before step() (the episode has ended)")
        arr = np.asarray(action)[None]
        act = decode_actions(self.spec_, arr, self._last.masks)
        s = self.pomdp.step(act, self._torch_gen)
        self._last = s
        done = bool(s.done[0])
        info: dict[str, Any] = {"in_response": self.pomdp.in_response,
                                "committed": s.executed is not None}
        if done:
            info["objective"] = float(s.info["objective"][0])
            self._active, self._fresh = False, True
        return self._obs(s), float(s.reward[0]), done, False, info
