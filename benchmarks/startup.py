"""Start-up time of ``import bilevel`` and of the ``bilevel`` command, next to torch and cvxpy.

Every row runs in a fresh subprocess, best of ``--repeat`` (5) runs. Import rows run
``python -X importtime -c "import X"`` and report both the wall time of the process and the
cumulative import time of ``X`` that ``-X importtime`` prints (without interpreter start-up);
command rows run the console script next to the interpreter (``.venv/bin/bilevel``) and report
wall time only. ``import torch`` and ``import cvxpy`` are there for reference: ``ratio`` is the
import time of ``bilevel`` over that of ``torch``. Targets (issue 14): ``import bilevel`` at most
0.5 s of import time, ``bilevel --help`` and every subcommand's ``--help`` at most 1 s wall.

Usage::

    python benchmarks/startup.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# (label, module) of the import rows; (label, arguments of ``bilevel``) of the command rows.
IMPORTS = [
    ("import bilevel", "bilevel"),
    ("import bilevel.models", "bilevel.models"),
    ("import bilevel.solvers", "bilevel.solvers"),
    ("import torch", "torch"),
    ("import cvxpy", "cvxpy"),
]
COMMANDS = [
    ("bilevel --help", ["--help"]),
    ("bilevel design --help", ["design", "--help"]),
]
TARGETS = {"import bilevel": ("import_s", 0.5), "bilevel --help": ("wall_s", 1.0),
           "bilevel design --help": ("wall_s", 1.0)}

_IMPORTTIME = re.compile(r"^import time:\s*\d+\s*\|\s*(\d+)\s*\|\s*(\S.*)$")


def _bilevel_command() -> list[str]:
    """The ``bilevel`` console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("bilevel")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bilevel._cli"]


def _run(argv: list[str]) -> tuple[float, str]:
    """Wall time of one subprocess (seconds) and its stderr; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr}")
    return wall, proc.stderr


def _import_seconds(stderr: str, module: str) -> float:
    """Cumulative import time of ``module`` (seconds) from ``-X importtime`` output."""
    for line in reversed(stderr.splitlines()):
        m = _IMPORTTIME.match(line)
        if m and m.group(2).strip() == module:
            return int(m.group(1)) * 1e-6
    raise RuntimeError(f"expected an importtime line for {module!r}, got none")


def measure(repeat: int = 5) -> dict[str, Any]:
    """Best-of-``repeat`` start-up times.

    Parameters
    ----------
    repeat : int, default 5
        Fresh subprocesses per row; the fastest is kept.

    Returns
    -------
    dict
        ``rows``: one dict per row (``label``, ``wall_s``, ``import_s`` or None, ``target_s``
        and ``meets_target``, None where there is no target); ``ratio``: import time of
        ``bilevel`` over that of ``torch``.
    """
    if repeat < 1:
        raise ValueError(f"expected repeat >= 1, got {repeat}")
    rows: list[dict[str, Any]] = []
    for label, module in IMPORTS:
        walls, imports = [], []
        for _ in range(repeat):
            wall, err = _run([sys.executable, "-X", "importtime", "-c", f"import {module}"])
            walls.append(wall)
            imports.append(_import_seconds(err, module))
        rows.append({"label": label, "wall_s": min(walls), "import_s": min(imports)})
    command = _bilevel_command()
    for label, args in COMMANDS:
        walls = [_run([*command, *args])[0] for _ in range(repeat)]
        rows.append({"label": label, "wall_s": min(walls), "import_s": None})
    for row in rows:
        key, target = TARGETS.get(row["label"], (None, None))
        row["target_s"] = target
        row["meets_target"] = None if key is None else bool(row[key] <= target)
    by_label = {r["label"]: r for r in rows}
    ratio = by_label["import bilevel"]["import_s"] / by_label["import torch"]["import_s"]
    return {"python": sys.version.split()[0], "repeat": repeat, "rows": rows, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (best of)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    out = measure(args.repeat)
    if args.json:
        print(json.dumps(out))
        return
    print(f"start-up times, best of {out['repeat']} fresh processes (Python {out['python']})")
    print(f"  {'':24s} {'wall s':>8s} {'import s':>9s} {'target s':>9s}")
    for r in out["rows"]:
        imp = "" if r["import_s"] is None else f"{r['import_s']:.3f}"
        tgt = "" if r["target_s"] is None else (
            f"{r['target_s']:.1f} " + ("ok" if r["meets_target"] else "MISSED"))
        print(f"  {r['label']:24s} {r['wall_s']:8.3f} {imp:>9s} {tgt:>12s}")
    print(f"  import bilevel / import torch: {out['ratio']:.3f}")


if __name__ == "__main__":
    main()
