"""A designer trained once per session on Proposition 1, shared by the designer and report tests."""

from __future__ import annotations

import pytest

from bilevel.spm._designer import SPMDesigner


@pytest.fixture(scope="session")
def prop1() -> SPMDesigner:
    return SPMDesigner(steps=20_000, seed=0, baselines=("rsd", "asp"),
                       price_grid=None).fit("proposition1")
