"""A leader trained once per session on normal-form game 1, shared by the designer and result
tests."""

from __future__ import annotations

import pytest
import torch

from bilevel.stackelberg._designer import StackelbergDesigner
from bilevel.stackelberg._result import StackelbergResult


@pytest.fixture(scope="session")
def game1() -> StackelbergResult:
    # normal-form game 1 ("Escape", Brero et al., Stackelberg POMDP, Appendix G.1.1): committing
    # to row 2 (C) earns 30/30 = 1.0
    torch.set_num_threads(1)  # session fixtures run before the autouse one
    return StackelbergDesigner(steps=20_000, seed=0, num_envs=16,
                               eval_every=5).fit("normal_form:game_1").result_
