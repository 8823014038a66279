"""Seeded streams of type profiles that do not depend on how they are batched.

A sampler ``(rng, k)`` need not split cleanly: drawing 100 profiles and then 100 more from one
generator can differ from drawing 200 at once (several draws per profile, bounded integers,
rejection sampling). :class:`ProfileStream` therefore draws profiles from its generator in
*fixed blocks* (:func:`profile_block` profiles, a number that depends on the environment only)
and hands them out in whatever batches the caller asks for. Profile ``j`` of a stream is a
function of the seed and ``j`` alone — never of the batch size, the number of profiles asked
for in total, workers or chunking.

For samplers that split cleanly (every built-in sampler that makes one ``uniform`` draw per
batch: sales, scheduling, the "uniform" gridworld) the stream's profiles are exactly those of
``env.sample_types(np.random.default_rng(seed), n)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from bilevel.models.typing import FloatArray

if TYPE_CHECKING:
    from bilevel.models._env import Environment

__all__ = ["PROFILE_BLOCK", "ProfileStream", "draw_profiles", "profile_block"]

#: Profiles per block (at most; fewer for very large type profiles, see :func:`profile_block`).
PROFILE_BLOCK = 2_000
#: Bytes of types one block may hold.
_BLOCK_BYTES = 256 * 2**20


def profile_block(env: Environment) -> int:
    """Profiles per block of ``env``'s streams: 2,000, fewer when a block would exceed 256 MiB.

    It depends on the environment's type shape only, so a stream's profiles do too.
    """
    per = 8 * int(np.prod(env.type_shape, dtype=np.int64))
    return int(max(1, min(PROFILE_BLOCK, _BLOCK_BYTES // max(per, 1))))


class ProfileStream:
    """The type profiles of ``env`` for ``seed``, drawn in fixed blocks, taken in any batches.

    Parameters
    ----------
    env : Environment
    seed : int or numpy.random.Generator or None
        An int (or None) seeds a fresh generator; a generator is drawn from in place.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("matching", n_agents=3, rounds=2)
    >>> a = ProfileStream(env, 4).take(10)
    >>> s = ProfileStream(env, 4)
    >>> bool((np.concatenate([s.take(3), s.take(7)]) == a).all())
    True
    """

    def __init__(self, env: Environment, seed: int | np.random.Generator | None) -> None:
        self._env = env
        self._rng = np.random.default_rng(seed)
        self._size = profile_block(env)
        self._block: FloatArray | None = None
        self._pos = 0
        self.n_taken = 0

    def take(self, k: int) -> FloatArray:
        """The next ``k`` profiles, an array of shape ``(k, *type_shape)`` (a fresh copy)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"expected k as an int >= 1, got {k!r}")
        parts: list[FloatArray] = []
        left = int(k)
        while left > 0:
            if self._block is None or self._pos == self._block.shape[0]:
                self._block = self._env.sample_types(self._rng, self._size)
                self._pos = 0
            j = min(left, self._block.shape[0] - self._pos)
            parts.append(self._block[self._pos : self._pos + j])
            self._pos += j
            left -= j
        self.n_taken += int(k)
        return np.concatenate(parts, axis=0)


def draw_profiles(
    env: Environment, seed: int | np.random.Generator | None, n: int, batch_size: int
) -> Iterator[FloatArray]:
    """Yield the first ``n`` profiles of ``ProfileStream(env, seed)`` in batches of ``batch_size``.

    Every batching of the same ``(env, seed, n)`` yields the same profiles in the same order;
    this is how :func:`bilevel.evaluate` and :func:`bilevel.objective_bound` draw.
    """
    stream = ProfileStream(env, seed)
    done = 0
    while done < n:
        k = min(batch_size, n - done)
        yield stream.take(k)
        done += k
