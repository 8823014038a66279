"""docs/architecture.md stays true: every package, family and name it lists exists."""

from __future__ import annotations

import importlib
import re

import pytest

import bilevel
from tests import ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text()
TABLE = [line for line in DOC.splitlines() if line.startswith("| ") and "---" not in line][1:]
LAYERS = ("bilevel.models", "bilevel.solvers", "bilevel")


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.split("|")[1].strip())
def test_every_listed_name_exists_in_its_layer(row: str) -> None:
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 4, row
    for layer, cell in zip(LAYERS, cells[1:], strict=True):
        package = importlib.import_module(layer)
        for name in _names(cell):
            if name.endswith("/"):  # a family subpackage
                importlib.import_module(f"{layer}.{name.rstrip('/')}")
            elif name.startswith("bilevel "):  # a CLI subcommand
                from bilevel._cli import build_parser

                sub = build_parser()._subparsers
                assert sub is not None
                choices = sub._actions[-1].choices
                assert isinstance(choices, dict) and name.split()[1] in choices
            elif name.startswith("—"):
                continue
            elif "." not in name and name[0].isalpha() and " " not in name:
                found = any(
                    hasattr(importlib.import_module(f"{layer}.{sub}"), name)
                    for sub in ("spm", "stackelberg", "rl", "dynamic", "audit")
                    if _has_sub(layer, sub)
                ) or name in dir(package)
                assert found, f"{layer} has no {name!r} ({row.split('|')[1].strip()} row)"


def _has_sub(layer: str, sub: str) -> bool:
    try:
        importlib.import_module(f"{layer}.{sub}")
    except ModuleNotFoundError:
        return False
    return True


def test_the_contract_names_exist() -> None:
    for name in ("steps", "learning_rate", "eval_every", "eval_samples", "threads", "seed",
                 "max_seconds"):
        assert name in bilevel.GLOSSARY
    for status in ("completed", "step_limit", "time_limit", "callback", "failed"):
        assert bilevel.RunStatus(status).value == status
    for path in ("tests/solvers/test_contract.py", "tests/test_layout.py",
                 "tests/test_packaging.py", "bilevel/_contract.py"):
        assert (ROOT / path).is_file(), path
    for name in ("load", "set_memory_limit", "Designer", "OuterResult"):
        assert hasattr(bilevel, name), name
    from bilevel.models import Registry, check_env, check_game, check_spm_setting  # noqa: F401
    from bilevel.search import run_search  # noqa: F401
