"""Every docstring example of the library, run under the module's installed name.

The folders ``models/`` and ``solvers/`` install as ``bilevel.models`` and ``bilevel.solvers``;
collecting their files by path (``--doctest-modules``) would import them a second time under the
top-level names ``models`` and ``solvers``. Walking the installed package avoids that.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bilevel

MODULES = [
    "bilevel",
    *sorted(m.name for m in pkgutil.walk_packages(bilevel.__path__, "bilevel.")),
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
