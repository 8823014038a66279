"""The PPO actor-critic: separate MLPs for the actor and the (possibly centralized) critic.

The actor maps an observation to one *masked categorical* distribution per categorical head of
the :class:`~bilevel.solvers.rl.ActionSpec` (illegal choices get probability 0) and, when the
spec has a continuous head, to a diagonal Gaussian with a state-independent log standard
deviation. Gaussian samples are clipped into ``[low, high]`` before they reach the environment;
log-probabilities are those of the unclipped sample (as in Stable-Baselines3). The critic reads
``critic_obs``, which may hold privileged information (MAPPO-style centralized critic).

Both networks are ``Linear → act → … → Linear`` MLPs (default 64-64 tanh) with orthogonal
initialisation (gain √2 on hidden layers, 0.01 on the policy head, 1 on the value head), drawn
from an explicit ``torch.Generator``. The Gaussian mean starts at the middle of ``[low, high]``
and its standard deviation at ``init_std · (high − low)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bilevel.solvers.rl._protocol import Action, ActionSpec

__all__ = ["ActorCritic", "PolicyDistribution", "load_weights"]

Tensor = torch.Tensor

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_NEG = -1e9  # logit of an illegal choice: exp underflows to exactly 0 in float32 and float64


def load_weights(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, never a pickled
    object; anything else is refused with a one-line :class:`ValueError` (torch's own message
    spans many lines and suggests ``weights_only=False``, which would run the file's code).

    Raises
    ------
    ValueError
        If ``path`` is not a torch file of tensors and plain data (``what`` names the writer).
    OSError
        If it cannot be read (e.g. it does not exist).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as e:  # UnpicklingError (a refused object), RuntimeError (not a zip), ...
        reason = ("it holds objects other than tensors and plain data, which are never "
                  "unpickled" if "weights only" in str(e).lower() else "it is not a torch file")
        raise ValueError(
            f"expected a file written by {what}, got {str(path)!r}: {reason}"
        ) from None


def _mlp(
    sizes: Sequence[int], activation: str, out_gain: float, generator: torch.Generator
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, gain=out_gain if last else math.sqrt(2.0),
                            generator=generator)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class PolicyDistribution:
    """The actor's action distribution for a batch of observations.

    Parameters
    ----------
    logits : tuple of Tensor, each shape (E, k_h)
        Masked, normalised log-probabilities of each categorical head (illegal choices hold a
        very negative number and have probability 0).
    mean : Tensor, shape (E, C)
        Mean of the Gaussian head (C = 0: none).
    log_std : Tensor, shape (C,)
        Log standard deviation of the Gaussian head.
    spec : ActionSpec
        The action space (bounds for clipping).
    """

    def __init__(
        self, logits: tuple[Tensor, ...], mean: Tensor, log_std: Tensor, spec: ActionSpec
    ) -> None:
        self.logits = logits
        self.mean = mean
        self.log_std = log_std
        self.spec = spec

    def sample(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw one action per row.

        Returns
        -------
        categorical : Tensor, shape (E, H), int64
            Chosen index per categorical head (Gumbel-max over the masked logits).
        continuous : Tensor, shape (E, C)
            Unclipped Gaussian sample (clip with :meth:`clip` before stepping).
        """
        E = self.mean.shape[0]
        cats = []
        for lg in self.logits:
            u = torch.rand(lg.shape, generator=generator, dtype=lg.dtype, device=lg.device)
            gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
            cats.append(torch.argmax(lg + gumbel, dim=1))
        cat = torch.stack(cats, dim=1) if cats else self.mean.new_zeros((E, 0), dtype=torch.long)
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                            device=self.mean.device)
        return cat, self.mean + noise * self.log_std.exp()

    def mode(self) -> tuple[Tensor, Tensor]:
        """Most likely action: argmax of each masked head and the clipped Gaussian mean.

        Returns
        -------
        categorical : Tensor, shape (E, H), int64
        continuous : Tensor, shape (E, C)
        """
        E = self.mean.shape[0]
        cats = [torch.argmax(lg, dim=1) for lg in self.logits]
        cat = torch.stack(cats, dim=1) if cats else self.mean.new_zeros((E, 0), dtype=torch.long)
        return cat, self.clip(self.mean)

    def clip(self, continuous: Tensor) -> Tensor:
        """Clip continuous coordinates into ``[low, high]``; shape is kept."""
        return continuous.clamp(self.spec.low, self.spec.high)

    def log_prob(self, categorical: Tensor, continuous: Tensor) -> Tensor:
        """Log-probability of actions, summed over heads.

        Parameters
        ----------
        categorical : Tensor, shape (E, H), int64
        continuous : Tensor, shape (E, C)

        Returns
        -------
        Tensor, shape (E,)
        """
        total = self.mean.new_zeros(self.mean.shape[0])
        for h, lg in enumerate(self.logits):
            total = total + lg.gather(1, categorical[:, h : h + 1]).squeeze(1)
        if self.mean.shape[1]:
            z = (continuous - self.mean) / self.log_std.exp()
            total = total + (-0.5 * z * z - self.log_std - 0.5 * math.log(2 * math.pi)).sum(1)
        return total

    def entropy(self) -> Tensor:
        """Entropy of the joint distribution, summed over heads; shape (E,)."""
        total = self.mean.new_zeros(self.mean.shape[0])
        for lg in self.logits:
            total = total - (lg.exp() * lg).sum(1)
        if self.mean.shape[1]:
            total = total + (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum()
        return total


class ActorCritic(nn.Module):
    """Actor and critic MLPs for a :class:`~bilevel.solvers.rl.BatchedEnv`.

    Parameters
    ----------
    obs_dim : int
        Length of the actor's observation.
    critic_obs_dim : int
        Length of the critic's observation.
    action_spec : ActionSpec
        Categorical heads and continuous head of the action.
    hidden : sequence of int, default (64, 64)
        Hidden layer widths of both networks.
    activation : {"tanh", "relu"}, default "tanh"
    init_std : float, default 0.5
        Initial standard deviation of the Gaussian head, as a fraction of ``high - low``.
    generator : torch.Generator, optional
        Source of the initial weights (default: a generator seeded with 0).
    dtype : torch.dtype, default torch.float32

    Examples
    --------
    >>> spec = ActionSpec(categorical=(3,), continuous=1)
    >>> ac = ActorCritic(4, 4, spec, generator=torch.Generator().manual_seed(0))
    >>> mask = torch.tensor([[True, False, True]])
    >>> a = ac.act(torch.zeros(1, 4), (mask,))
    >>> a.categorical.shape, a.continuous.shape, a.categorical.item() in (0, 2)
    (torch.Size([1, 1]), torch.Size([1, 1]), True)
    """

    def __init__(
        self,
        obs_dim: int,
        critic_obs_dim: int,
        action_spec: ActionSpec,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        init_std: float = 0.5,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not isinstance(action_spec, ActionSpec):
            raise TypeError(f"expected an ActionSpec, got {type(action_spec).__name__}")
        if obs_dim < 1 or critic_obs_dim < 1:
            raise ValueError(
                f"expected obs_dim and critic_obs_dim >= 1, got {obs_dim}, {critic_obs_dim}"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(f"expected activation in {sorted(_ACTIVATIONS)}, got {activation!r}")
        if not init_std > 0:
            raise ValueError(f"expected init_std > 0, got {init_std}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"expected hidden widths >= 1, got {hidden}")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.obs_dim = int(obs_dim)
        self.critic_obs_dim = int(critic_obs_dim)
        self.action_spec = action_spec
        self.hidden = hidden
        self.activation = activation
        self.init_std = float(init_std)
        n_out = sum(action_spec.categorical) + action_spec.continuous
        self.actor = _mlp((obs_dim, *hidden, n_out), activation, 0.01, gen)
        self.critic = _mlp((critic_obs_dim, *hidden, 1), activation, 1.0, gen)
        span = action_spec.high - action_spec.low
        C = action_spec.continuous
        self.log_std = nn.Parameter(torch.full((C,), math.log(init_std * span)))
        if C:  # Gaussian mean starts mid-range rather than at a bound
            last = self.actor[-1]
            assert isinstance(last, nn.Linear)
            with torch.no_grad():
                last.bias[n_out - C :] = 0.5 * (action_spec.low + action_spec.high)
        self.to(dtype)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.log_std.dtype

    def distribution(self, obs: Tensor, masks: Sequence[Tensor]) -> PolicyDistribution:
        """The action distribution for a batch of observations.

        Parameters
        ----------
        obs : Tensor, shape (E, obs_dim)
        masks : sequence of Tensor, each shape (E, k_h), bool
            Legal choices of each categorical head.

        Returns
        -------
        PolicyDistribution
        """
        spec = self.action_spec
        if len(masks) != len(spec.categorical):
            raise ValueError(
                f"expected {len(spec.categorical)} masks, got {len(masks)}"
            )
        out = self.actor(obs.to(self.dtype))
        logits = []
        start = 0
        for h, k in enumerate(spec.categorical):
            raw = out[:, start : start + k]
            start += k
            masked = torch.where(masks[h], raw, torch.full_like(raw, _NEG))
            logits.append(torch.log_softmax(masked, dim=1))
        mean = out[:, start:]
        return PolicyDistribution(tuple(logits), mean, self.log_std, spec)

    def value(self, critic_obs: Tensor) -> Tensor:
        """Critic value; ``critic_obs`` shape (E, critic_obs_dim) → shape (E,)."""
        v: Tensor = self.critic(critic_obs.to(self.dtype)).squeeze(1)
        return v

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        masks: Sequence[Tensor],
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> Action:
        """Actions for a batch of observations, continuous coordinates clipped into bounds.

        Parameters
        ----------
        obs : Tensor, shape (E, obs_dim)
        masks : sequence of Tensor, each shape (E, k_h), bool
        deterministic : bool, default True
            Argmax of each head and the Gaussian mean; otherwise a sample drawn with
            ``generator`` (required then).

        Returns
        -------
        Action
            ``categorical`` shape (E, H) int64, ``continuous`` shape (E, C).
        """
        dist = self.distribution(obs, masks)
        if deterministic:
            cat, cont = dist.mode()
        else:
            if generator is None:
                raise ValueError("expected a torch.Generator for stochastic actions, got None")
            cat, raw = dist.sample(generator)
            cont = dist.clip(raw)
        return Action(categorical=cat, continuous=cont)

    def constructor_args(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network's architecture (see :meth:`load`)."""
        spec = self.action_spec
        return {
            "obs_dim": self.obs_dim,
            "critic_obs_dim": self.critic_obs_dim,
            "categorical": list(spec.categorical),
            "continuous": spec.continuous,
            "low": spec.low,
            "high": spec.high,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "init_std": self.init_std,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def to_dict(self) -> dict[str, Any]:
        """Architecture and weights as a dict of primitives and tensors (see :meth:`from_dict`)."""
        return {"args": self.constructor_args(), "state_dict": self.state_dict()}

    @classmethod
    def from_dict(cls, blob: Any) -> ActorCritic:
        """Rebuild a network from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``blob`` is not such a dict.
        """
        if not isinstance(blob, dict) or "args" not in blob or "state_dict" not in blob:
            raise ValueError("expected a dict written by ActorCritic.to_dict, got something else")
        a = blob["args"]
        dtype = getattr(torch, str(a["dtype"]))
        spec = ActionSpec(tuple(a["categorical"]), int(a["continuous"]), float(a["low"]),
                          float(a["high"]))
        net = cls(int(a["obs_dim"]), int(a["critic_obs_dim"]), spec, tuple(a["hidden"]),
                  str(a["activation"]), float(a["init_std"]), dtype=dtype)
        net.load_state_dict(blob["state_dict"])
        return net

    def save(self, path: str | Path) -> None:
        """Write the architecture and weights to ``path`` (a ``torch.save`` file)."""
        torch.save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> ActorCritic:
        """Rebuild a network written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file does not hold a saved ActorCritic.
        """
        blob = load_weights(path, "ActorCritic.save")
        try:
            return cls.from_dict(blob)
        except ValueError:
            raise ValueError(
                f"expected a file written by ActorCritic.save, got {str(path)!r}"
            ) from None
