"""Report figures (PNG, matplotlib with the non-interactive Agg backend).

* learning curves of the search methods (training objective per step or candidate, smoothed);
* the boosts of a gridworld mechanism as heat maps over the grid, one panel per action (the
  paper notes that learned boosts favour staying near the start cell);
* the distribution of per-profile makespans under VCG and under a designed mechanism.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from bilevel._mechanism import AMA, vcg
from bilevel._outcomes import batch_outcomes
from bilevel.models import Environment

__all__ = ["plot_gridworld_boosts", "plot_learning_curves", "plot_makespan_distribution"]


def _save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (creating the directory) and close it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if y.size < 2 * k or k <= 1:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def plot_learning_curves(
    histories: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    *,
    title: str = "learning curves",
    ylabel: str = "objective",
) -> Path:
    """Plot ``{label: [(step, value), ...]}`` (moving average of 5 % of the points).

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, hist in histories.items():
        if not hist:
            continue
        arr = np.asarray(hist, dtype=np.float64)
        y = arr[:, 1]
        k = max(1, y.size // 20)
        ys = _smooth(y, k)
        ax.plot(arr[len(arr) - len(ys):, 0], ys, label=label)
    ax.set_xlabel("step (gradient methods) / candidate (grid)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_gridworld_boosts(env: Environment, mechanism: AMA, path: str | Path) -> Path:
    """Heat maps of a gridworld mechanism's boosts over the grid, one panel per action.

    Raises
    ------
    ValueError
        If ``env`` is not a gridworld.
    """
    if env.name != "gridworld":
        raise ValueError(f"expected a gridworld environment, got {env.name!r}")
    mechanism.check_compatible(env)
    G = int(env.params["grid"])
    fig, axes = plt.subplots(1, env.n_actions, figsize=(3.0 * env.n_actions, 3.2))
    vmax = float(np.abs(mechanism.boosts).max()) or 1.0
    im = None
    for a, ax in enumerate(np.atleast_1d(axes)):
        grid = np.zeros((G, G))
        for s, label in enumerate(env.mdp.states):
            cell: tuple[int, int] = label  # type: ignore[assignment]
            grid[cell[1] - 1, cell[0] - 1] = mechanism.boosts[s, a]
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"boost: {env.mdp.actions[a]}")
        ax.set_xticks(range(G), [str(i + 1) for i in range(G)])
        ax.set_yticks(range(G), [str(i + 1) for i in range(G)])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.plot(0, 0, marker="*", color="k", markersize=10)  # the start cell (1, 1)
    if im is not None:
        fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8)
    return _save(fig, path)


def plot_makespan_distribution(
    env: Environment, mechanism: AMA, path: str | Path, *, n_samples: int = 2000, seed: int = 0
) -> Path:
    """Histogram of per-profile makespans of VCG and ``mechanism`` on common profiles."""
    if "makespan" not in env.costs:
        raise ValueError(f"expected an environment with a makespan, got {env.name!r}")
    types = env.sample_types(np.random.default_rng(seed), n_samples)
    R = env.rewards(types)
    base = vcg(env)
    W = np.stack([base.weights, mechanism.weights])
    B = np.stack([base.boosts, mechanism.boosts])
    out = batch_outcomes(env.mdp, W, B, R, None)
    mk = np.einsum("cksa,ksa->ck", out.occupancy, env.cost("makespan", types))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.linspace(0.0, float(mk.max()) or 1.0, 40).tolist()
    for label, values in (("VCG", mk[0]), (mechanism.name, mk[1])):
        ax.hist(values, bins=bins, alpha=0.5, label=f"{label} (mean {values.mean():.3f})")
    ax.set_xlabel("makespan")
    ax.set_ylabel("profiles")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
