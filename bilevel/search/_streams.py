"""The random streams of one design, derived from its seed.

One place defines them so that a multistart search can replay, exactly, the stand-alone
gradient runs of a given seed (their random starts, profile batches and perturbations).
"""

from __future__ import annotations

import numpy as np

__all__ = ["design_streams", "trial_streams"]


def design_streams(seed: int) -> tuple[np.random.Generator, int]:
    """Independent search generator and evaluation seed of a design with seed ``seed``.

    Parameters
    ----------
    seed : int

    Returns
    -------
    numpy.random.Generator
        The search stream (also the stream of the first gradient trial).
    int
        Seed of the final evaluation's profiles.
    """
    ss = np.random.SeedSequence(seed)
    search, ev = ss.spawn(2)
    return np.random.default_rng(search), int(ev.generate_state(1)[0])


def trial_streams(seed: int, k: int) -> list[np.random.Generator]:
    """Generators of gradient trials 2..k+1 of a design with seed ``seed``.

    They are independent of the search and evaluation streams of :func:`design_streams`.

    Parameters
    ----------
    seed : int
    k : int
        Number of extra trials (0 gives ``[]``).

    Returns
    -------
    list of numpy.random.Generator
    """
    if k <= 0:
        return []
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(k)]
