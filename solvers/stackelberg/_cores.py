"""Batched leader-side dynamics of one Stackelberg sub-game ("one game" of a leader episode).

A Stackelberg POMDP episode (:mod:`bilevel.solvers.stackelberg._pomdp`) plays many short games: in
each, the followers' types and actions (messages) are fixed first, then the leader takes ``horizon``
steps, each on an observation of the follower actions and of the game so far, and the game pays the
leader and every follower. A :class:`LeaderGameCore` holds exactly that, batched over ``E`` rows as
torch tensors; the settings (payoff tables, priors, normalisations) come from
:mod:`bilevel.models.stackelberg` as data and are converted by :func:`core_from_game`.

Every observation a core emits carries an integer *key* in ``[0, n_keys)`` that identifies it
within an episode in which the leader is committed (same key ⇔ same observation, given the
leader's earlier committed actions). The commitment cache of the environment is indexed by it,
so it is a tensor lookup instead of a dictionary of float tuples.

Cores
-----
* :class:`MatrixGameCore` — normal-form games: one follower without private type; the leader
  sees a constant and plays a row (deterministic mode) or row weights ``w`` turned into the
  mixture ``w / Σw`` (randomised mode; uniform if ``Σw = 0``); payoffs are exact expectations
  over the leader's mixture.
* :class:`MatrixDesignCore` — two followers play a 2×2 game; the leader sees the joint action
  and pays transfers ``t_i ∈ [0, high]`` (normalised units) that cost it nothing; the leader
  earns the welfare ``u_1 + u_2``.
* :class:`SimpleAllocationCore` — one follower with a uniform private type in ``{0, 1, 2}``
  sends one of ``m`` messages; the leader picks an item; both earn 1 iff item = type.
* :class:`MessageSPMCore` — two followers with private values send messages; the leader runs a
  sequential price mechanism over them (which agent to visit, a price in ``[0, 1]``), one item,
  always visiting both agents (fixed horizon 2); a visited agent buys iff its value exceeds the
  price (strictly); the leader earns ``welfare − max value`` (≤ 0, the welfare-loss trick).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bilevel.models.stackelberg import (
    MatrixDesignGame,
    MSPMGame,
    NormalFormGame,
    SimpleAllocationGame,
    make_game,
)
from bilevel.solvers.rl._protocol import Action, ActionSpec
from bilevel.solvers.stackelberg._no_regret import joint_index

__all__ = [
    "LeaderGameCore",
    "MatrixDesignCore",
    "MatrixGameCore",
    "MessageSPMCore",
    "SimpleAllocationCore",
    "core_from_game",
]

Tensor = torch.Tensor
State = dict[str, Tensor]


def _prior(p: Sequence[float] | Tensor, name: str) -> Tensor:
    t = torch.tensor(np.array(p, dtype=np.float64)).flatten()
    if t.numel() < 1 or bool((t < 0).any()) or abs(float(t.sum()) - 1.0) > 1e-9:
        raise ValueError(f"expected {name} to be a probability vector, got {t.tolist()}")
    return t


class LeaderGameCore(ABC):
    """The leader's side of one game, batched over rows.

    Attributes
    ----------
    name : str
        Setting name, e.g. ``"simple_allocation:2"``.
    type_counts : tuple of int
        Number of private types ``K_i`` of each follower (1 = no private type).
    action_counts : tuple of int
        Number of actions (messages) ``A_i`` of each follower.
    priors : tuple of Tensor, each shape (K_i,), float64
        Independent type priors.
    horizon : int
        Leader steps per game.
    obs_dim : int
        Length of the leader's observation.
    n_keys : int
        Number of distinct observation keys.
    action_spec : ActionSpec
        The leader's action space.
    optimum : float or None
        Best leader value per game known from the papers or by brute force (see the game's
        docstring in :mod:`bilevel.models.stackelberg`), if any.
    """

    name: str
    type_counts: tuple[int, ...]
    action_counts: tuple[int, ...]
    priors: tuple[Tensor, ...]
    horizon: int
    obs_dim: int
    n_keys: int
    action_spec: ActionSpec
    optimum: float | None = None

    @property
    def n_followers(self) -> int:
        """Number of followers ``n``."""
        return len(self.action_counts)

    @abstractmethod
    def start(self, types: Tensor, actions: Tensor) -> State:
        """Start one game per row.

        Parameters
        ----------
        types, actions : Tensor, shape (E, n), int64
            Each follower's type and action (message).
        """

    @abstractmethod
    def observe(self, state: State, t: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """Observation before leader step ``t``.

        Returns
        -------
        obs : Tensor, shape (E, obs_dim), float32
        key : Tensor, shape (E,), int64
            Observation key in ``[0, n_keys)``.
        masks : tuple of Tensor, each shape (E, k_h), bool
            Legal choices of each categorical head.
        """

    @abstractmethod
    def advance(self, state: State, t: int, action: Action) -> State:
        """Apply leader step ``t`` (actions already clipped into the spec's bounds)."""

    @abstractmethod
    def tabular(self, filled: Tensor, categorical: Tensor, continuous: Tensor) -> tuple[Any, ...]:
        """The tabular leader policy of one committed episode, as ``game.payoffs`` takes it.

        Parameters
        ----------
        filled : Tensor, shape (n_keys,), bool
            Keys the episode visited.
        categorical : Tensor, shape (n_keys, n_cat), int64
        continuous : Tensor, shape (n_keys, n_cont), float
            Committed (raw) actions per key; clipped into the spec's bounds here.

        Returns
        -------
        tuple of ndarray
            Positional arguments of the game's ``payoffs`` (see :mod:`bilevel.models.stackelberg`);
            keys the episode never visited (they cannot matter to its payoffs) get the lower bound.
        """

    @abstractmethod
    def payoffs(self, state: State) -> tuple[Tensor, Tensor]:
        """Payoffs of finished games.

        Returns
        -------
        leader : Tensor, shape (E,), float
        followers : Tensor, shape (E, n), float
        """


class MatrixGameCore(LeaderGameCore):
    """Normal-form Stackelberg game: leader rows against one follower's columns.

    Parameters
    ----------
    leader, follower : array_like, shape (R, C)
        Normalised payoffs of the leader and the follower.
    randomized : bool
        Leader commits to a mixture (continuous row weights in ``[0, 1]``) instead of a row.
    name : str
    optimum : float or None

    Examples
    --------
    >>> core = MatrixGameCore([[1.0, 0.0], [0.0, 0.5]], [[0.0, 1.0], [1.0, 0.0]])
    >>> core.action_spec.categorical, core.obs_dim, core.n_keys
    ((2,), 1, 1)
    """

    def __init__(
        self,
        leader: Any,
        follower: Any,
        *,
        randomized: bool = False,
        name: str = "normal_form",
        optimum: float | None = None,
    ) -> None:
        L = torch.tensor(np.array(leader, dtype=np.float64))
        F = torch.tensor(np.array(follower, dtype=np.float64))
        if L.ndim != 2 or F.shape != L.shape:
            raise ValueError(
                f"expected leader and follower payoffs of one shape (R, C), "
                f"got {tuple(L.shape)} and {tuple(F.shape)}"
            )
        self.L, self.F = L.float(), F.float()
        self.randomized = randomized
        R, C = L.shape
        self.name, self.optimum = name, optimum
        self.type_counts, self.action_counts = (1,), (C,)
        self.priors = (torch.ones(1, dtype=torch.float64),)
        self.horizon, self.obs_dim, self.n_keys = 1, 1, 1
        self.action_spec = (
            ActionSpec(continuous=R, low=0.0, high=1.0) if randomized
            else ActionSpec(categorical=(R,))
        )

    def start(self, types: Tensor, actions: Tensor) -> State:
        E = actions.shape[0]
        return {"col": actions[:, 0], "mix": torch.zeros(E, self.L.shape[0], device=actions.device)}

    def observe(self, state: State, t: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        E = state["col"].shape[0]
        dev = state["col"].device
        masks: tuple[Tensor, ...] = ()
        if not self.randomized:
            masks = (torch.ones(E, self.L.shape[0], dtype=torch.bool, device=dev),)
        return (torch.ones(E, 1, device=dev), torch.zeros(E, dtype=torch.long, device=dev), masks)

    def advance(self, state: State, t: int, action: Action) -> State:
        if self.randomized:
            w = action.continuous.float()
            s = w.sum(1, keepdim=True)
            mix = torch.where(s > 0, w / s.clamp_min(1e-30), torch.full_like(w, 1.0 / w.shape[1]))
        else:
            mix = torch.nn.functional.one_hot(action.categorical[:, 0], self.L.shape[0]).float()
        return {**state, "mix": mix}

    def tabular(self, filled: Tensor, categorical: Tensor, continuous: Tensor) -> tuple[Any, ...]:
        """``(row,)`` (deterministic) or ``(weights (R,),)`` (randomised)."""
        if self.randomized:
            return (continuous[0].double().clamp(0.0, 1.0).numpy(),)
        return (int(categorical[0, 0]),)

    def payoffs(self, state: State) -> tuple[Tensor, Tensor]:
        col = state["col"]
        lead = (state["mix"] * self.L.to(col.device)[:, col].T).sum(1)
        fol = (state["mix"] * self.F.to(col.device)[:, col].T).sum(1)
        return lead, fol[:, None]


class MatrixDesignCore(LeaderGameCore):
    """Matrix design: two followers play a 2×2 game, the leader adds transfers.

    Parameters
    ----------
    payoffs : array_like, shape (2, 2, 2)
        Normalised ``u[a1, a2, i]``.
    high : float
        Upper bound of each transfer (normalised units).
    """

    def __init__(
        self,
        payoffs: Any,
        *,
        high: float = 10.0,
        name: str = "matrix_design",
        optimum: float | None = None,
    ) -> None:
        U = torch.tensor(np.array(payoffs, dtype=np.float64))
        if U.shape != (2, 2, 2):
            raise ValueError(f"expected payoffs of shape (2, 2, 2), got {tuple(U.shape)}")
        self.U = U.float()
        self.name, self.optimum = name, optimum
        self.type_counts, self.action_counts = (1, 1), (2, 2)
        self.priors = (torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
        self.horizon, self.obs_dim, self.n_keys = 1, 4, 4
        self.action_spec = ActionSpec(continuous=2, low=0.0, high=high)

    def start(self, types: Tensor, actions: Tensor) -> State:
        return {"joint": joint_index(actions, (2, 2)),
                "transfer": torch.zeros(actions.shape[0], 2, device=actions.device)}

    def observe(self, state: State, t: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        j = state["joint"]
        return torch.nn.functional.one_hot(j, 4).float(), j, ()

    def advance(self, state: State, t: int, action: Action) -> State:
        return {**state, "transfer": action.continuous.float()}

    def tabular(self, filled: Tensor, categorical: Tensor, continuous: Tensor) -> tuple[Any, ...]:
        """``(transfers (2, 2, 2),)``: ``transfers[a1, a2, i]``."""
        t = continuous[:4].double().clamp(0.0, self.action_spec.high)
        t = torch.where(filled[:4, None], t, torch.zeros_like(t))
        return (t.reshape(2, 2, 2).numpy(),)

    def payoffs(self, state: State) -> tuple[Tensor, Tensor]:
        u = self.U.to(state["joint"].device).reshape(4, 2)[state["joint"]]
        return u.sum(1), u + state["transfer"]


class SimpleAllocationCore(LeaderGameCore):
    """Simple allocation: one follower with a uniform type in ``{0..n_items-1}``, ``m`` messages.

    Parameters
    ----------
    m : int
        Number of messages.
    n_items : int
        Number of items (= types).
    """

    def __init__(
        self, m: int, *, n_items: int = 3, name: str | None = None, optimum: float | None = None
    ) -> None:
        if int(m) < 1 or int(n_items) < 1:
            raise ValueError(f"expected m >= 1 and n_items >= 1, got m={m}, n_items={n_items}")
        self.m, self.k = int(m), int(n_items)
        self.name = name or f"simple_allocation:{self.m}"
        self.optimum = optimum
        self.type_counts, self.action_counts = (self.k,), (self.m,)
        self.priors = (torch.full((self.k,), 1.0 / self.k, dtype=torch.float64),)
        self.horizon, self.obs_dim, self.n_keys = 1, self.m, self.m
        self.action_spec = ActionSpec(categorical=(self.k,))

    def start(self, types: Tensor, actions: Tensor) -> State:
        return {"type": types[:, 0], "msg": actions[:, 0], "item": torch.zeros_like(types[:, 0])}

    def observe(self, state: State, t: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        msg = state["msg"]
        mask = torch.ones(msg.shape[0], self.k, dtype=torch.bool, device=msg.device)
        return torch.nn.functional.one_hot(msg, self.m).float(), msg, (mask,)

    def advance(self, state: State, t: int, action: Action) -> State:
        return {**state, "item": action.categorical[:, 0]}

    def tabular(self, filled: Tensor, categorical: Tensor, continuous: Tensor) -> tuple[Any, ...]:
        """``(items (m,),)``: the item allocated after each message."""
        items = torch.where(filled, categorical[:, 0], torch.zeros_like(categorical[:, 0]))
        return (items.numpy(),)

    def payoffs(self, state: State) -> tuple[Tensor, Tensor]:
        hit = (state["item"] == state["type"]).float()
        return hit, hit[:, None]


class MessageSPMCore(LeaderGameCore):
    """Message sequential price mechanism: two followers, one item, fixed horizon 2.

    Observation (length ``2 + 1 + 2 + 2 + 2·M``): agents remaining, item remaining, allocation,
    prices posted to each visited agent, one-hot messages. Action: categorical head "which
    remaining agent" (visited agents masked) and a continuous price in ``[0, 1]``.

    Parameters
    ----------
    values : sequence of 2 array_like, each shape (K_i,)
        Each follower's value of each of its types (normalised).
    priors : sequence of 2 array_like, each shape (K_i,)
        Type priors.
    messages : int
        Number of messages ``M``.
    buy_on_tie : bool
        Whether a visited agent buys at zero surplus (default: only at positive surplus).
    """

    def __init__(
        self,
        values: Sequence[Any],
        priors: Sequence[Any],
        messages: int,
        *,
        buy_on_tie: bool = False,
        name: str = "mspm",
        optimum: float | None = None,
    ) -> None:
        if len(values) != 2 or len(priors) != 2:
            raise ValueError(f"expected values and priors of 2 followers, got {len(values)}")
        self.values = tuple(torch.tensor(np.array(v, dtype=np.float32)).flatten() for v in values)
        self.priors = tuple(_prior(p, "prior") for p in priors)
        if any(v.numel() != p.numel() for v, p in zip(self.values, self.priors, strict=True)):
            raise ValueError("expected one value per type of each follower")
        if int(messages) < 1:
            raise ValueError(f"expected messages >= 1, got {messages}")
        self.M = int(messages)
        self.buy_on_tie = bool(buy_on_tie)
        self.name, self.optimum = name, optimum
        self.type_counts = tuple(int(v.numel()) for v in self.values)
        self.action_counts = (self.M, self.M)
        self.horizon = 2
        self.obs_dim = 7 + 2 * self.M
        # key: step 0 → message profile; step 1 → (profile, first agent, bought)
        self.n_keys = self.M * self.M * 5
        self.action_spec = ActionSpec(categorical=(2,), continuous=1, low=0.0, high=1.0)

    def start(self, types: Tensor, actions: Tensor) -> State:
        E, dev = types.shape[0], types.device
        v = torch.stack([self.values[i].to(dev)[types[:, i]] for i in range(2)], 1)
        return {
            "v": v, "msg": actions.clone(),
            "visited": torch.zeros(E, 2, dtype=torch.bool, device=dev),
            "alloc": torch.zeros(E, 2, device=dev), "posted": torch.zeros(E, 2, device=dev),
            "paid": torch.zeros(E, device=dev),
            "first": torch.zeros(E, dtype=torch.long, device=dev),
        }

    def observe(self, state: State, t: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        msg = state["msg"]
        sold = state["alloc"].sum(1, keepdim=True)
        obs = torch.cat([
            (~state["visited"]).float(), 1.0 - sold, state["alloc"], state["posted"],
            torch.nn.functional.one_hot(msg, self.M).flatten(1).float(),
        ], 1)
        prof = msg[:, 0] * self.M + msg[:, 1]
        if t == 0:
            key = prof
        else:
            key = self.M * self.M + prof * 4 + 2 * state["first"] + sold[:, 0].long()
        return obs, key, (~state["visited"],)

    def advance(self, state: State, t: int, action: Action) -> State:
        agent = action.categorical[:, 0]
        price = action.continuous[:, 0].float()
        rows = torch.arange(agent.shape[0], device=agent.device)
        unsold = state["alloc"].sum(1) == 0
        surplus = state["v"][rows, agent] - price
        buys = unsold & ((surplus >= 0) if self.buy_on_tie else (surplus > 0))
        visited = state["visited"].clone()
        visited[rows, agent] = True
        posted = state["posted"].clone()
        posted[rows, agent] = price
        alloc = state["alloc"].clone()
        alloc[rows, agent] = torch.where(buys, 1.0, alloc[rows, agent])
        paid = torch.where(buys, price, state["paid"])
        first = agent if t == 0 else state["first"]
        return {**state, "visited": visited, "posted": posted, "alloc": alloc, "paid": paid,
                "first": first}

    def tabular(self, filled: Tensor, categorical: Tensor, continuous: Tensor) -> tuple[Any, ...]:
        """``(first_agent, first_price, second_price)``, each shape (M, M)."""
        P = self.M * self.M
        prof = torch.arange(P)
        first = torch.where(filled[:P], categorical[:P, 0], torch.zeros_like(prof))
        p1 = torch.where(filled[:P], continuous[:P, 0].double().clamp(0.0, 1.0),
                         torch.zeros(P, dtype=torch.float64))
        k2 = P + prof * 4 + 2 * first  # step-1 key with the item unsold
        p2 = torch.where(filled[k2], continuous[k2, 0].double().clamp(0.0, 1.0),
                         torch.zeros(P, dtype=torch.float64))
        M = self.M
        return (first.reshape(M, M).numpy(), p1.reshape(M, M).numpy(),
                p2.reshape(M, M).numpy())

    def payoffs(self, state: State) -> tuple[Tensor, Tensor]:
        v, alloc = state["v"], state["alloc"]
        welfare = (v * alloc).sum(1)
        fol = alloc * (v - state["paid"][:, None])
        return welfare - v.max(1).values, fol


def core_from_game(game: Any, **options: Any) -> LeaderGameCore:
    """Build the leader-side core of a Stackelberg setting of :mod:`bilevel.models.stackelberg`.

    Parameters
    ----------
    game : StackelbergGame or str
        A game from :mod:`bilevel.models.stackelberg`, or its name
        (``"normal_form:game_2:randomized"``, ``"matrix_design"``, ``"simple_allocation:3"``,
        ``"mspm:PI:2"``, ``"mspm:MSGSpace:3:2"``).
    **options
        Passed to the core (e.g. ``high`` of the matrix-design transfers).

    Raises
    ------
    TypeError, ValueError
        If the game is unknown.

    Examples
    --------
    >>> core = core_from_game("simple_allocation:2")
    >>> type(core).__name__, core.n_keys, core.optimum
    ('SimpleAllocationCore', 2, 0.6666666666666666)
    """
    if isinstance(game, str):
        game = make_game(game)
    if isinstance(game, NormalFormGame):
        return MatrixGameCore(game.leader, game.follower, randomized=game.randomized,
                              name=game.name, optimum=game.optimum, **options)
    if isinstance(game, MatrixDesignGame):
        return MatrixDesignCore(game.payoffs_normalised, high=game.high, name=game.name,
                                optimum=game.optimum, **options)
    if isinstance(game, SimpleAllocationGame):
        return SimpleAllocationCore(game.n_messages, n_items=game.n_items, name=game.name,
                                    optimum=game.optimum, **options)
    if isinstance(game, MSPMGame):
        return MessageSPMCore(game.values, game.priors, game.n_messages,
                              buy_on_tie=game.buy_on_tie, name=game.name, optimum=game.optimum,
                              **options)
    raise TypeError(
        f"expected a Stackelberg game of bilevel.models.stackelberg, got {type(game).__name__}"
    )
