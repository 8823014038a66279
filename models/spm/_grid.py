"""Discrete price grids for SPM price heads (the discrete-price mode of SP-B, the authors' code).

Brero et al. (2021) let the policy output continuous prices; SP-B (``docs/references.md``)
optionally picks each price from a grid instead.
"""

from __future__ import annotations

import itertools

from bilevel.models.spm._setting import SPMSetting

__all__ = ["default_price_grid"]


def default_price_grid(setting: SPMSetting, size: int = 21) -> tuple[tuple[float, ...], ...]:
    """The default price grid of each item type.

    For a finite-support setting, type ``j``'s grid is ``{0}``, the midpoints between
    consecutive support values of type ``j``, and ``1`` (no sale under the strict tie rule,
    as values are at most 1): with the strict rule these prices realise every distinct buy
    decision of a single agent. For a continuous setting it is ``size`` equally spaced prices
    in [0, 1].

    Parameters
    ----------
    setting : SPMSetting
    size : int, optional
        Grid size for continuous settings (at least 2).

    Returns
    -------
    tuple of d tuples of float
        Sorted prices of each item type.

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> default_price_grid(make_spm_setting("two_worlds"))
    ((0.0, 0.25, 0.5, 0.8, 1.0),)
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"expected size as an int >= 2, got {size!r}")
    values = setting.type_values()
    if values is None:
        return tuple(
            tuple(round(i / (size - 1), 12) for i in range(size)) for _ in range(setting.n_types)
        )
    grids = []
    for vals in values:
        pts = {0.0, 1.0}
        pts.update(round((a + b) / 2.0, 12) for a, b in itertools.pairwise(vals))
        grids.append(tuple(sorted(pts)))
    return tuple(grids)
