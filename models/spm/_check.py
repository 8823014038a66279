"""``check_spm_setting``: the conformance check every SPM setting passes."""

from __future__ import annotations

import torch

from bilevel.models.spm._setting import SPMSetting

__all__ = ["check_spm_setting"]


def check_spm_setting(setting: SPMSetting, *, samples: int = 1000, seed: int = 0) -> None:
    """Check that a setting's sampler and support are consistent and normalised.

    Checks: samples have shape (num, n, d), dtype float64, finite values in [0, 1]; the same
    seed gives the same samples; a finite support's profiles have the right shape, values in
    [0, 1] and probabilities summing to 1, and every sampled profile lies in the support (for
    jointly enumerated supports) or in the product of the marginals.

    Parameters
    ----------
    setting : SPMSetting
    samples : int, optional
        Number of profiles drawn.
    seed : int, optional

    Raises
    ------
    ValueError
        Describing the first failed check.

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> check_spm_setting(make_spm_setting("kitchen_sink"))
    """
    n, d = setting.n_agents, setting.n_types
    v = setting.sample(samples, torch.Generator().manual_seed(seed))
    if tuple(v.shape) != (samples, n, d) or v.dtype != torch.float64:
        raise ValueError(
            f"expected samples of shape ({samples}, {n}, {d}) and dtype float64, "
            f"got {tuple(v.shape)} {v.dtype}"
        )
    if not bool(torch.isfinite(v).all()) or float(v.min()) < 0.0 or float(v.max()) > 1.0:
        raise ValueError(f"expected normalised sampled values in [0, 1] for {setting.name!r}")
    again = setting.sample(samples, torch.Generator().manual_seed(seed))
    if not torch.equal(v, again):
        raise ValueError("expected reproducible samples for a seed, got different draws")
    if setting.support is not None:
        flat = setting.support.reshape(setting.support.shape[0], -1)
        inside = ((v.reshape(samples, 1, -1) - flat[None]).abs().amax(-1) < 1e-12).any(1)
        if not bool(inside.all()):
            raise ValueError(f"expected every sampled profile in the support of {setting.name!r}")
    if setting.marginals is not None:
        for i, (vals, _) in enumerate(setting.marginals):
            hit = ((v[:, i, None, :] - vals[None]).abs().amax(-1) < 1e-12).any(1)
            if not bool(hit.all()):
                raise ValueError(f"expected agent {i}'s sampled values in its marginal support")
    if setting.finite:
        total = sum(float(p.sum()) for _, p in setting.profiles(1 << 16))
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"expected support probabilities summing to 1, got {total}")
