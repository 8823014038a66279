"""``check_bandit_setting`` catches inconsistent settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bilevel.models.dynamic import BanditAuctionSetting, check_bandit_setting, make_bandit_setting


def test_a_sampler_outside_the_support_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_bandit_setting("discrete")

    def bad(self: BanditAuctionSetting, salt: object, rows: torch.Tensor,
            *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.full((int(rows.shape[0]), 1, 1), 2.5, dtype=dtype)

    monkeypatch.setattr(BanditAuctionSetting, "initial_values", bad)
    with pytest.raises(ValueError, match=r"expected initial values in the support \(1.0, 2.0"):
        check_bandit_setting(s, samples=10)


def test_a_non_reproducible_sampler_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    s = dataclasses.replace(make_bandit_setting("continuous"))
    calls = iter(range(100))

    def drifting(self: BanditAuctionSetting, salt: object, rows: torch.Tensor,
                 *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.full((int(rows.shape[0]), 1, 1), 1.0 + next(calls) * 0.1, dtype=dtype)

    monkeypatch.setattr(BanditAuctionSetting, "initial_values", drifting)
    with pytest.raises(ValueError, match="expected reproducible samples for a seed"):
        check_bandit_setting(s, samples=10)


def test_check_rejects_a_non_setting() -> None:
    with pytest.raises(TypeError, match="expected a BanditAuctionSetting, got str"):
        check_bandit_setting("discrete")  # type: ignore[arg-type]
