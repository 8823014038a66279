"""Fast start (issue 14): importing the package and the ``--help`` of every ``bilevel`` command
load none of the heavy libraries (torch, cvxpy, cvxpylayers, matplotlib), which the code that
needs them imports on first use. Each check runs in a fresh interpreter. Timings are in
``benchmarks/startup.py``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "cvxpy", "cvxpylayers", "matplotlib")

# Every subcommand of ``bilevel`` (checked against the parser below).
COMMANDS = ("envs", "evaluate", "bound", "design", "reproduce", "run", "report", "spm",
            "spm-baselines", "stackelberg", "audit", "dynamic")


def _heavy_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; it prints a JSON object of checkpoint -> modules.

    ``code`` may call ``loaded(label)`` to record which heavy modules are loaded at that point.
    """
    prelude = (
        "import json, sys\n"
        f"HEAVY = {HEAVY!r}\n"
        "OUT = {}\n"
        "def loaded(label):\n"
        "    OUT[label] = sorted(m for m in HEAVY if m in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code + "\nprint(json.dumps(OUT))"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, list[str]] = json.loads(proc.stdout.splitlines()[-1])
    return out


def test_import_bilevel_loads_no_heavy_library() -> None:
    out = _heavy_after("import bilevel\nloaded('import bilevel')\n"
                       "import bilevel.models\nloaded('import bilevel.models')\n"
                       "import bilevel.solvers\nloaded('import bilevel.solvers')\n"
                       "from bilevel.solvers import solve_lp\nloaded('solve_lp')\n")
    assert out == {"import bilevel": [], "import bilevel.models": [],
                   "import bilevel.solvers": [], "solve_lp": []}


def test_help_of_every_command_loads_no_heavy_library() -> None:
    code = (
        "import contextlib, io\n"
        "from bilevel._cli import build_parser, main\n"
        "loaded('import bilevel._cli')\n"
        "build_parser()\n"
        "loaded('build_parser()')\n"
        f"for args in [[]] + [[c] for c in {COMMANDS!r}]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([*args, '--help'])\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (args, e.code)\n"
        "    loaded(' '.join(['bilevel', *args, '--help']))\n"
    )
    out = _heavy_after(code)
    assert len(out) == 3 + len(COMMANDS)
    assert {label: mods for label, mods in out.items() if mods} == {}


def test_commands_list_is_complete() -> None:
    import argparse

    from bilevel._cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)


def test_lazy_names_still_import() -> None:
    from bilevel import AMADesigner
    from bilevel._designer import AMADesigner as Designer
    from bilevel.spm import SPMDesigner, write_spm_report
    from bilevel.spm._designer import SPMDesigner as Spm
    from bilevel.spm._report import write_spm_report as write

    assert AMADesigner is Designer and SPMDesigner is Spm and write_spm_report is write
    import bilevel.spm

    assert {"SPMDesigner", "best_values", "write_spm_report"} <= set(dir(bilevel.spm))
    assert not hasattr(bilevel.spm, "nonexistent")


def test_static_help_lists_match_the_registries() -> None:
    # bilevel spm's help lists names without importing bilevel.models.spm (torch)
    from bilevel.models.spm import OBJECTIVES, STATISTICS, list_spm_settings
    from bilevel.spm import _cli

    assert tuple(s.name for s in list_spm_settings()) == _cli.SETTING_NAMES
    assert _cli.OBJECTIVES == OBJECTIVES
    assert _cli.STATISTICS == STATISTICS
