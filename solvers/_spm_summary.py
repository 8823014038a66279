"""Every exact (or Monte Carlo) reference value available for an SPM setting, in one call."""

from __future__ import annotations

import contextlib

import torch

from models.spm import SPMSetting
from solvers._spm_dp import best_asp_value, best_psp_value, best_spm_value
from solvers._spm_exact import expected_optimum, rsd_value
from solvers._spm_result import SPMValue

__all__ = ["spm_reference_values"]


def spm_reference_values(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    generator: torch.Generator | None = None,
    samples: int = 100_000,
    psp_limit: int = 1 << 21,
) -> dict[str, SPMValue]:
    """E[OPT], RSD and the best SPM / PSP / ASP values that an exact method can compute.

    Parameters
    ----------
    setting : SPMSetting
    objective : str, optional
        Default: the setting's. E[OPT] is the optimal *welfare* (an upper bound on revenue); it
        is omitted for max-min fairness.
    tie : {"strict", "weak"}, optional
    generator : torch.Generator, optional
        Enables Monte Carlo estimates of E[OPT] and RSD where no exact method applies.
    samples : int, optional
        Monte Carlo sample size.
    psp_limit : int, optional
        Largest number of price sequences enumerated for the best PSP.

    Returns
    -------
    dict of str to SPMValue
        Keys among ``"optimum"``, ``"rsd"``, ``"best_spm"``, ``"best_psp"``, ``"best_asp"``;
        a key is absent when no method applies (e.g. best PSP of kitchen sink; only RSD for
        max-min fairness; Monte Carlo quantities without a generator).

    Examples
    --------
    >>> from models.spm import make_spm_setting
    >>> vals = spm_reference_values(make_spm_setting("proposition1"))
    >>> {k: round(v.value * 3, 6) for k, v in vals.items()}
    {'optimum': 2.5, 'rsd': 2.0, 'best_spm': 2.5, 'best_psp': 2.5, 'best_asp': 2.25}
    """
    obj = setting.objective if objective is None else objective
    out: dict[str, SPMValue] = {}
    if obj in ("welfare", "revenue"):
        try:
            out["optimum"] = expected_optimum(setting, generator=generator, samples=None)
        except ValueError:
            if generator is not None:
                out["optimum"] = expected_optimum(setting, generator=generator, samples=samples)
    try:
        out["rsd"] = rsd_value(setting, objective=obj, tie=tie)
    except ValueError:
        if generator is not None:
            out["rsd"] = rsd_value(
                setting, objective=obj, tie=tie, generator=generator, samples=samples
            )
    if obj not in ("welfare", "revenue"):
        return out
    for key, fn in (("best_spm", best_spm_value), ("best_asp", best_asp_value)):
        with contextlib.suppress(ValueError):
            out[key] = fn(setting, objective=obj, tie=tie)
    with contextlib.suppress(ValueError):
        out["best_psp"] = best_psp_value(setting, objective=obj, tie=tie, limit=psp_limit)
    return {k: out[k] for k in ("optimum", "rsd", "best_spm", "best_psp", "best_asp") if k in out}
