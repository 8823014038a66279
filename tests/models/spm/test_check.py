"""The conformance checker of SPM settings catches unnormalised, unseeded, off-support samplers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bilevel.models.spm import SPMSetting, check_spm_setting, make_spm_setting


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_conformance_checker_catches_bad_samplers() -> None:
    good = make_spm_setting("proposition1")
    too_big = SPMSetting(
        "bad", 2, (1,), lambda num, g: 2.0 * torch.ones(num, 2, 1, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="normalised"):
        check_spm_setting(too_big)
    noisy = SPMSetting(
        "noisy", 2, (1,), lambda num, g: torch.rand(num, 2, 1, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="reproducible"):
        check_spm_setting(noisy)
    off_support = SPMSetting(
        "off", 2, (1,), good.sampler, support=torch.zeros(1, 2, 1, dtype=torch.float64),
        probs=torch.ones(1, dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="support"):
        check_spm_setting(off_support)
