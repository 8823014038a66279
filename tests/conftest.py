"""Suite-wide pytest configuration: slow tests stay out of any run that does not ask for them.

``addopts`` deselects ``slow`` with ``-m 'not slow'``, but a ``-m`` on the command line
replaces it, so ``pytest -m "not integration"`` would otherwise run the long convergence runs
too. Here ``slow`` tests are deselected whenever a non-empty marker expression does not mention
``slow``: ``-m "not integration"`` is the fast unit run, ``-m slow`` (or any expression naming
``slow``) still selects them, and ``-m ""`` selects everything.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expr = config.option.markexpr or ""
    if not expr or "slow" in expr:  # no -m at all is addopts' 'not slow'; -m "" selects all
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
