"""StackelbergResult: save and load a trained result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel.stackelberg._result import StackelbergResult, load_stackelberg


def test_save_load_roundtrip(game1: StackelbergResult, tmp_path: Path) -> None:
    game1.save(tmp_path / "r")
    back = load_stackelberg(tmp_path / "r")
    assert back.value == game1.value and back.leader_table[0].tolist() == 2
    np.testing.assert_array_equal(back.eval_values, game1.eval_values)
    assert back.policy is not None
    obs = torch.ones(1, 1)
    mask = (torch.ones(1, 3, dtype=torch.bool),)
    assert game1.policy is not None
    assert torch.equal(back.policy.act(obs, mask).categorical,
                       game1.policy.act(obs, mask).categorical)
    with pytest.raises(ValueError, match=r"expected a directory with result\.json"):
        load_stackelberg(tmp_path / "missing")
