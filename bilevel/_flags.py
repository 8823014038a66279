"""Command-line flags of the shared hyper-parameters: one spelling per glossary name.

Every subcommand spells a shared hyper-parameter as its glossary name
(:data:`bilevel.GLOSSARY`: ``--steps``, ``--learning-rate``, ``--eval-every``,
``--eval-samples``, ``--threads``, ``--seed``, ``--max-seconds``). Old spellings stay for one
release as hidden aliases that print a deprecation warning. Only argparse is imported here, so
building the parsers stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_flag"]


class _Renamed(argparse.Action):
    """A deprecated spelling: stores into the new flag's destination, with a warning."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "",
                 **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and goes in the next "
              f"release; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_flag(parser: argparse.ArgumentParser, name: str, *, old: Sequence[str] = (),
             **kwargs: Any) -> None:
    """Add ``--<name>`` (underscores as dashes) storing into ``name``, plus deprecated spellings.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    name : str
        The glossary name, e.g. ``"learning_rate"`` → ``--learning-rate``.
    old : sequence of str
        Former spellings (``"--lr"``), accepted with a warning and hidden from ``--help``.
    **kwargs
        ``add_argument`` keywords of the new flag (``type``, ``default``, ``help``, …).
    """
    flag = "--" + name.replace("_", "-")
    parser.add_argument(flag, dest=name, **kwargs)
    extra = {"type": kwargs["type"]} if "type" in kwargs else {}
    for spelling in old:
        parser.add_argument(spelling, dest=name, action=_Renamed, new=flag,
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)
