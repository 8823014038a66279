"""One table of bad inputs, API and command line: every entry fails clearly.

An API entry asserts the exception type and a message fragment. A CLI entry runs
``bilevel._cli.main`` in-process and asserts the exit code (2 for usage errors, 1 for
failures), a single line on stderr holding the fragment, and no traceback; a few CLI entries
are also run in a real subprocess. Inputs are small and limits are set low, so nothing large
is ever allocated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bilevel import (
    AMA,
    AMADesigner,
    GridSearch,
    ResultStore,
    evaluate,
    load_mechanism,
    make_env,
    mdp_from_arrays,
    mdp_from_successors,
    sobol_candidates,
    solve_dp,
    vcg,
)
from bilevel._cli import main
from bilevel._memory import ENV_VAR, MemoryLimitError, parse_bytes, set_memory_limit
from bilevel._store import StoreError
from bilevel.solvers import EntropicSolver

SALES = make_env("sales", n_agents=3, n_items=2)  # (S, A) = (5, 4)
ENV3x2 = ["sales", "--n-agents", "3", "--n-items", "2"]
NO_CUDA = "torch was built without CUDA" if not __import__("torch").backends.cuda.is_built() \
    else "no CUDA device is visible"


@dataclass(frozen=True)
class Case:
    """A bad input: ``api(tmp)`` must raise ``error``; or ``argv(tmp)`` must exit ``error``."""

    id: str
    error: type[BaseException] | int
    match: str
    api: Callable[[Path], Any] | None = None
    argv: Callable[[Path], list[str]] | None = None
    env: dict[str, str] | None = None


def _write(tmp: Path, name: str, data: str | bytes) -> str:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data)
    return str(p)


def _saved(tmp: Path, suffix: str) -> Path:
    return vcg(SALES).save(tmp / f"mech{suffix}")


def _truncated_npz(tmp: Path) -> str:
    raw = _saved(tmp, ".npz").read_bytes()
    return _write(tmp, "truncated.npz", raw[: len(raw) // 2])


def _json_without(tmp: Path, key: str) -> str:
    d = json.loads(_saved(tmp, ".json").read_text())
    del d[key]
    return _write(tmp, f"no_{key}.json", json.dumps(d))


def _pickled_npz(tmp: Path) -> str:
    p = tmp / "pickled.npz"
    np.savez(p, format=np.array(["bilevel.ama/1", None], dtype=object),
             weights=np.ones(3), boosts=np.zeros((5, 4)), name=np.array("x"),
             meta=np.array("{}"))
    return str(p)


def _corrupt_store_dir(tmp: Path) -> str:
    _write(tmp, "run/store.sqlite", b"SQLite format 3\x00" + b"\xff" * 200)
    return str(tmp / "run")


def _readonly_dir(tmp: Path) -> str:
    if os.geteuid() != 0:
        d = tmp / "readonly"
        d.mkdir()
        d.chmod(0o500)
        return str(d / "out")
    if Path("/sys").is_dir():  # root ignores permissions; /sys is read-only even for root
        return "/sys/bilevel-out"
    pytest.skip("no read-only directory available")


def _config(tmp: Path, text: str) -> str:
    return _write(tmp, "exp.toml", text)


_GOOD_CONFIG = '[env]\nname = "sales"\nn_agents = 2\nn_items = 1\n[design]\nmethods = ["grid"]\n'


def _infinite(t: int, a: int) -> list[tuple[int, float]]:
    return [(t + 1, 1.0)]


def _chain_p() -> np.ndarray:
    P = np.zeros((2, 2, 2))
    P[0, :, 1] = 1.0
    return P


def _store_put_blob(tmp: Path) -> None:
    ResultStore(tmp / "s.sqlite").put_blob("k", "text")  # type: ignore[arg-type]


def _design(tmp: Path, **kw: Any) -> Any:
    return AMADesigner(**{"method": "grid", "n_points": 4, "n_profiles": 5,
                          "eval_samples": 5, **kw}).fit(SALES)


# ---------------------------------------------------------------------- the table

API: list[Case] = [
    # rewards, types and solvers
    Case("dp-reward-shape", ValueError, r"expected reward of shape \(S, A\) = \(5, 4\)",
         api=lambda t: solve_dp(SALES.mdp, np.zeros((4, 4)))),
    Case("dp-reward-nan", ValueError, r"expected finite rewards, got NaN or inf",
         api=lambda t: solve_dp(SALES.mdp, np.full((5, 4), np.nan))),
    Case("types-shape", ValueError, r"expected types of shape \(k, \*type_shape\) = \(k, 3\)",
         api=lambda t: SALES.rewards(np.zeros((2, 4)))),
    Case("types-nan", ValueError, r"expected finite types, got NaN or inf",
         api=lambda t: SALES.rewards(np.array([[0.1, np.nan, 0.3]]))),
    Case("counterfactual-agent", ValueError, r"expected an agent index in \[0, 3\)",
         api=lambda t: SALES.counterfactual(np.zeros((1, 3)), 3)),
    Case("sample-k-zero", ValueError, r"expected k >= 1, got 0",
         api=lambda t: SALES.sample_types(0, 0)),
    # MDP structure
    Case("mdp-P-shape", ValueError, r"expected P of shape \(S, A, S\), got",
         api=lambda t: mdp_from_arrays(np.zeros((2, 2)), [1.0, 0.0], 1.0)),
    Case("mdp-P-negative", ValueError, r"expected non-negative transition probabilities",
         api=lambda t: mdp_from_arrays(-_chain_p(), [1.0, 0.0], 1.0)),
    Case("mdp-P-nan", ValueError, r"expected finite transition probabilities",
         api=lambda t: mdp_from_arrays(_chain_p() * np.nan, [1.0, 0.0], 1.0)),
    Case("mdp-gamma", ValueError, r"expected gamma in \(0, 1\], got 1\.5",
         api=lambda t: mdp_from_arrays(_chain_p(), [1.0, 0.0], 1.5)),
    Case("mdp-labels", ValueError, r"expected 2 state labels, got 3",
         api=lambda t: mdp_from_arrays(_chain_p(), [1.0, 0.0], 1.0, states=[0, 1, 2])),
    Case("successors-no-actions", ValueError, r"expected at least one action, got 0",
         api=lambda t: mdp_from_successors(0, _infinite, [], 0.9)),
    Case("successors-infinite-chain", ValueError,
         r"expected at most max_states = 500 states, but the successor function reaches more",
         api=lambda t: mdp_from_successors(0, _infinite, ["go"], 0.9, max_states=500)),
    Case("successors-max-states-type", ValueError, r"expected max_states as an int >= 1",
         api=lambda t: mdp_from_successors(0, _infinite, ["go"], 0.9, max_states=2.5)),  # type: ignore[arg-type]
    # environments
    Case("env-unknown", ValueError, r"expected an environment name in \[.*\], got 'nope'",
         api=lambda t: make_env("nope")),
    Case("env-unknown-param", ValueError, r"got unknown \['n_item'\]",
         api=lambda t: make_env("sales", n_item=2)),
    Case("env-n-agents-zero", ValueError, r"expected n_agents >= 1, got 0",
         api=lambda t: make_env("sales", n_agents=0)),
    Case("env-n-items-float", TypeError, r"expected n_items as an int, got float",
         api=lambda t: make_env("sales", n_items=2.0)),
    Case("env-grid-one", ValueError, r"expected grid >= 2, got 1",
         api=lambda t: make_env("gridworld", grid=1)),
    Case("env-gridworld-gamma-one", ValueError, r"expected gamma < 1 for the gridworld",
         api=lambda t: make_env("gridworld", gamma=1.0)),
    Case("env-dist", ValueError, r"expected dist in \(.*\), got 'normal'",
         api=lambda t: make_env("sales", dist="normal")),
    # mechanisms
    Case("ama-weights", ValueError, r"expected weights w > 0 and finite, got",
         api=lambda t: AMA([1.0, -1.0], np.zeros((5, 4)))),
    Case("ama-boosts-nan", ValueError, r"expected finite boosts, got NaN or inf",
         api=lambda t: AMA([1.0], np.full((5, 4), np.nan))),
    Case("ama-wrong-env", ValueError, r"boosts must have shape \(S, A\) = \(5, 4\)",
         api=lambda t: AMA(np.ones(3), np.zeros((4, 4))).check_compatible(SALES)),
    Case("load-suffix", ValueError, r"expected a path ending in \.json or \.npz",
         api=lambda t: load_mechanism(_write(t, "m.txt", "x"))),
    Case("load-missing-file", FileNotFoundError, r"m\.json",
         api=lambda t: load_mechanism(t / "m.json")),
    Case("load-garbage-npz", ValueError,
         r"expected a bilevel mechanism archive \(\.npz written by AMA\.save\), got a file "
         r"numpy cannot read", api=lambda t: load_mechanism(_write(t, "g.npz", b"garbage"))),
    Case("load-truncated-npz", ValueError, r"got a file numpy cannot read",
         api=lambda t: load_mechanism(_truncated_npz(t))),
    Case("load-pickled-npz", ValueError, r"got a file numpy cannot read",
         api=lambda t: load_mechanism(_pickled_npz(t))),
    Case("load-json-garbage", ValueError, r"expected a bilevel mechanism \(\.json written by "
         r"AMA\.save\), got .* which is not JSON",
         api=lambda t: load_mechanism(_write(t, "g.json", "{not json"))),
    Case("load-json-missing-key", ValueError, r"expected a mechanism with 'weights' and "
         r"'boosts', got .* without \['boosts'\]",
         api=lambda t: load_mechanism(_json_without(t, "boosts"))),
    Case("load-json-format", ValueError, r"expected a mechanism with format 'bilevel\.ama/1'",
         api=lambda t: load_mechanism(_write(t, "f.json", '{"format": "other"}'))),
    Case("load-directory", ValueError, r"expected a saved mechanism file, got the directory",
         api=lambda t: load_mechanism(_write(t, "d.json/x", "") and t / "d.json")),
    # evaluation
    Case("evaluate-n-samples", ValueError, r"expected n_samples >= 1, got 0",
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=0)),
    Case("evaluate-n-samples-float", TypeError, r"expected n_samples as an int, got float",
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=10.0)),  # type: ignore[arg-type]
    Case("evaluate-batch-size", ValueError, r"expected batch_size >= 1, got 0",
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=5, batch_size=0)),
    Case("evaluate-baseline", ValueError, r"expected baseline 'vcg', an AMA or None",
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=5, baseline="myerson")),
    Case("evaluate-objective-typo", ValueError, r"revenu",
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=5, objective="revenu")),
    Case("evaluate-memory-limit", MemoryLimitError,
         r"evaluation on Environment\('sales'.*\) needs about .* for a single type profile, "
         r"more than the memory limit of 100 B", env={ENV_VAR: "100"},
         api=lambda t: evaluate(SALES, vcg(SALES), n_samples=5)),
    Case("memory-limit-env-var", ValueError, rf"{ENV_VAR}: expected a memory size",
         env={ENV_VAR: "plenty"}, api=lambda t: evaluate(SALES, vcg(SALES), n_samples=5)),
    Case("memory-size", ValueError, r"expected a memory size such as 4GiB or 512MB, got '4 GB!'",
         api=lambda t: parse_bytes("4 GB!")),
    # search and design
    Case("sobol-n-points", ValueError, r"expected n_points as an int >= 1, got 0",
         api=lambda t: sobol_candidates(0, 3, (5, 4), (-1.0, 1.0), False)),
    Case("sobol-box", ValueError, r"expected a boost box \(lo, hi\) with finite lo < hi",
         api=lambda t: sobol_candidates(4, 3, (5, 4), (1.0, -1.0), False)),
    Case("sobol-dimension", ValueError, r"dimension S·A = 6000·4 = 24000, beyond scipy's "
         r"maximum of 21201", api=lambda t: sobol_candidates(2, 2, (6000, 4), (-1, 1), False)),
    Case("grid-n-profiles", ValueError, r"expected n_profiles as an int >= 1, got 0",
         api=lambda t: GridSearch(n_profiles=0)),
    Case("grid-memory", MemoryLimitError, r"1000 grid candidates .* use fewer points",
         env={ENV_VAR: "10kB"}, api=lambda t: sobol_candidates(1000, 3, (5, 4), (-1, 1), False)),
    Case("designer-method", ValueError, r"^AMADesigner: expected method as one of",
         api=lambda t: _design(t, method="newton")),
    Case("designer-alpha", ValueError, r"^AMADesigner: expected alpha as a finite float > 0",
         api=lambda t: _design(t, alpha=-1.0)),
    Case("designer-set-params", ValueError, r"expected a parameter among \[.*\], got 'lrate'",
         api=lambda t: AMADesigner().set_params(lrate=0.1)),
    Case("designer-env-type", TypeError, r"expected an Environment \(see make_env\), got int",
         api=lambda t: AMADesigner().fit(3)),  # type: ignore[arg-type]
    Case("designer-checkpoint-every", ValueError,
         r"^AMADesigner: expected checkpoint_every as a finite float >= 0, got -1.0$",
         api=lambda t: _design(t, checkpoint_every=-1.0)),
    Case("designer-device-cuda", ValueError, r"expected a torch device available here "
         rf"\(cpu.*\), got 'cuda' \({NO_CUDA}\)", api=lambda t: _design(t, device="cuda")),
    Case("designer-device-name", ValueError, r"got 'gpu' \(not a torch device name\)",
         api=lambda t: _design(t, device="gpu")),
    Case("entropic-device-cuda", ValueError, r"expected a torch device available here "
         rf"\(cpu.*\), got 'cuda:0' \({NO_CUDA}\)",
         api=lambda t: EntropicSolver(SALES.mdp, 0.1, device="cuda:0")),
    Case("design-memory-limit", MemoryLimitError, r"more than the memory limit",
         env={ENV_VAR: "2kB"}, api=_design),
    # stores
    Case("store-corrupt", StoreError, r"cannot use the result store '.*store\.sqlite': file is "
         r"not a database", api=lambda t: ResultStore(_corrupt_store_dir(t) + "/store.sqlite")),
    Case("store-under-a-file", StoreError, r"cannot open the result store .* exists and is not "
         r"a directory", api=lambda t: ResultStore(_write(t, "f", "x") + "/store.sqlite")),
    Case("store-blob-type", TypeError, r"expected bytes, got str", api=_store_put_blob),
]

CLI: list[Case] = [
    # argument parsing (usage errors: exit 2)
    Case("cli-unknown-command", 2, r"invalid choice: 'evaluat'",
         argv=lambda t: ["evaluat", "sales"]),
    Case("cli-bad-int", 2, r"argument --n-agents: invalid int value: 'three'",
         argv=lambda t: ["evaluate", "sales", "--n-agents", "three"]),
    Case("cli-bad-choice", 2, r"argument --method: invalid choice: 'newton'",
         argv=lambda t: ["design", *ENV3x2, "--method", "newton"]),
    Case("cli-unknown-option", 2, r"unrecognized arguments: --itmes",
         argv=lambda t: ["evaluate", *ENV3x2, "--itmes", "2"]),
    Case("cli-memory-limit-syntax", 2, r"argument --memory-limit: expected a memory size",
         argv=lambda t: ["evaluate", *ENV3x2, "--memory-limit", "lots"]),
    Case("cli-checkpoint-every-negative", 2, r"argument --checkpoint-every: expected a number "
         r"of seconds >= 0, got '-1'", argv=lambda t: ["design", *ENV3x2, "--checkpoint-every",
                                                       "-1"]),
    # environments
    Case("cli-unknown-env", 2, r"expected an environment name in \[.*\], got 'salse'",
         argv=lambda t: ["evaluate", "salse"]),
    Case("cli-option-of-other-env", 2, r"--n-items applies to sales only, got env 'scheduling'",
         argv=lambda t: ["evaluate", "scheduling", "--n-items", "2"]),
    Case("cli-n-agents-zero", 2, r"expected n_agents >= 1, got 0",
         argv=lambda t: ["evaluate", "sales", "--n-agents", "0"]),
    Case("cli-gamma", 2, r"expected gamma", argv=lambda t: ["bound", *ENV3x2, "--gamma", "2"]),
    # evaluate
    Case("cli-objective-typo", 2, r"revenu",
         argv=lambda t: ["evaluate", *ENV3x2, "--samples", "5", "--objective", "revenu"]),
    Case("cli-samples-zero", 2, r"expected --samples >= 1, got 0",
         argv=lambda t: ["evaluate", *ENV3x2, "--samples", "0"]),
    Case("cli-mechanism-missing", 2, r"expected 'vcg', 'optimal' or a saved mechanism file, "
         r"got '.*nothere\.json' \(not found\)",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", str(t / "nothere.json")]),
    Case("cli-mechanism-missing-key", 2, r"without \['weights'\]",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", _json_without(t, "weights")]),
    Case("cli-mechanism-garbage-npz", 2, r"expected a bilevel mechanism archive \(\.npz "
         r"written by AMA\.save\), got a file numpy cannot read",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", _write(t, "g.npz", b"\x00" * 64)]),
    Case("cli-mechanism-truncated-npz", 2, r"got a file numpy cannot read",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", _truncated_npz(t)]),
    Case("cli-mechanism-garbage-json", 2, r"which is not JSON",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", _write(t, "g.json", "\x00\x01")]),
    Case("cli-mechanism-suffix", 2, r"expected a path ending in \.json or \.npz",
         argv=lambda t: ["evaluate", *ENV3x2, "--mechanism", _write(t, "m.pkl", "x")]),
    Case("cli-mechanism-wrong-shape", 2, r"expected a mechanism for 2 agents",
         argv=lambda t: ["evaluate", "sales", "--n-agents", "2", "--n-items", "2",
                         "--mechanism", str(_saved(t, ".json"))]),
    Case("cli-optimal-not-ama", 2, r"gridworld: multi-parameter types, no closed-form optimum",
         argv=lambda t: ["evaluate", "gridworld", "--dist", "uniform", "--mechanism",
                         "optimal"]),
    Case("cli-objective-of-other-env", 2, r"expected objective in \['revenue', 'welfare'\] "
         r"for 'sales', got 'makespan'",
         argv=lambda t: ["evaluate", *ENV3x2, "--objective", "makespan", "--samples", "5"]),
    Case("cli-evaluate-memory-limit", 1, r"more than the memory limit of 1\.0 KiB",
         argv=lambda t: ["evaluate", *ENV3x2, "--samples", "5", "--memory-limit", "1KiB"]),
    Case("cli-evaluate-memory-env-var", 1, r"more than the memory limit of 200 B",
         env={ENV_VAR: "200"}, argv=lambda t: ["evaluate", *ENV3x2, "--samples", "5"]),
    # bound
    Case("cli-bound-unknown", 1, r"bound|revenue",
         argv=lambda t: ["bound", "scheduling", "--objective", "revenue", "--samples", "5"]),
    Case("cli-bound-samples", 2, r"expected --samples >= 1, got -3",
         argv=lambda t: ["bound", *ENV3x2, "--samples", "-3"]),
    # design
    Case("cli-design-points-zero", 2, r"n_points",
         argv=lambda t: ["design", *ENV3x2, "--points", "0"]),
    Case("cli-design-workers-zero", 2, r"expected --workers >= 1, got 0",
         argv=lambda t: ["design", *ENV3x2, "--points", "4", "--workers", "0"]),
    Case("cli-design-evals", 2, r"expected --evals as an int or comma-separated ints",
         argv=lambda t: ["design", *ENV3x2, "--method", "cma", "--evals", "a,b"]),
    Case("cli-design-grid-dimension", 2, r"dimension S·A = 5625·4 = 22500, beyond scipy's "
         r"maximum of 21201",
         argv=lambda t: ["design", "gridworld", "--grid", "75", "--points", "2",
                         "--profiles", "2"]),
    Case("cli-design-memory-limit", 1, r"more than the memory limit",
         argv=lambda t: ["design", *ENV3x2, "--points", "50", "--profiles", "10",
                         "--memory-limit", "2kB"]),
    Case("cli-design-out-is-a-file", 2, r"expected --out to be a directory, got the file",
         argv=lambda t: ["design", *ENV3x2, "--points", "2", "--out", _write(t, "f", "x")]),
    Case("cli-design-out-under-a-file", 1, r"cannot write to --out .* is not a directory",
         argv=lambda t: ["design", *ENV3x2, "--points", "2", "--out",
                         _write(t, "g", "x") + "/out"]),
    Case("cli-design-out-read-only", 1, r"cannot write to --out",
         argv=lambda t: ["design", *ENV3x2, "--points", "2", "--out", _readonly_dir(t)]),
    Case("cli-design-corrupt-store", 1, r"cannot use the result store '.*store\.sqlite': file "
         r"is not a database",
         argv=lambda t: ["design", *ENV3x2, "--points", "2", "--profiles", "2",
                         "--eval-samples", "2", "--out", _corrupt_store_dir(t)]),
    # reproduce and report
    Case("cli-reproduce-table", 2, r"expected table1\.\.table5 or all, got 'table9'",
         argv=lambda t: ["reproduce", "table9", "--out", str(t / "r")]),
    Case("cli-reproduce-workers", 2, r"expected --workers >= 1, got 0",
         argv=lambda t: ["reproduce", "table1", "--workers", "0", "--out", str(t / "r")]),
    Case("cli-report-missing", 2, r"expected a reproduce output directory",
         argv=lambda t: ["report", str(t / "nothing")]),
    Case("cli-report-corrupt-store", 1, r"cannot use the result store '.*store\.sqlite'",
         argv=lambda t: ["report", _corrupt_store_dir(t)]),
    # run (TOML configurations)
    Case("cli-run-missing-config", 2, r"expected a TOML configuration file, got "
         r"'.*nothere\.toml' \(not found\)",
         argv=lambda t: ["run", str(t / "nothere.toml")]),
    Case("cli-run-directory-config", 2, r"expected a TOML configuration file, got the "
         r"directory", argv=lambda t: ["run", str(t)]),
    Case("cli-run-invalid-toml", 2, r"expected a valid TOML file",
         argv=lambda t: ["run", _config(t, "[env\nname = ")]),
    Case("cli-run-budget-type", 2, r"expected \[budgets\] grid as a table of AMADesigner "
         r"arguments or an int \(n_points\), got 'five'",
         argv=lambda t: ["run", _config(t, _GOOD_CONFIG + '[budgets]\ngrid = "five"\n')]),
    Case("cli-run-unknown-section", 2, r"expected sections among .* got unknown \['outputs'\]",
         argv=lambda t: ["run", _config(t, _GOOD_CONFIG + "[outputs]\ndir = 'x'\n")]),
    Case("cli-run-unknown-method", 2, r"expected \[design\] methods among .* got unknown",
         argv=lambda t: ["run", _config(t, _GOOD_CONFIG.replace('"grid"', '"newton"'))]),
    Case("cli-run-no-env", 2, r"expected an \[env\] section with a 'name'",
         argv=lambda t: ["run", _config(t, '[design]\nmethods = ["grid"]\n')]),
    Case("cli-run-binary-config", 2, r"expected a TOML configuration file \(UTF-8 text\), "
         r"got .*bin\.toml', which is not text",
         argv=lambda t: ["run", _write(t, "bin.toml", b"\xff\xfe\x00garbage")]),
]

CASES = API + CLI


def test_the_table_is_large_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 60
    assert len(API) >= 30 and len(CLI) >= 30
    assert all((c.api is None) != (c.argv is None) for c in CASES)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    set_memory_limit(None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    for k, v in (case.env or {}).items():
        monkeypatch.setenv(k, v)
    if case.api is not None:
        assert isinstance(case.error, type)
        with pytest.raises(case.error, match=case.match) as info:
            case.api(tmp_path)
        assert "\n" not in str(info.value) and "allow_pickle" not in str(info.value)
        return
    assert case.argv is not None
    code: str | int | None
    try:
        code = main(case.argv(tmp_path))
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == case.error, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and "allow_pickle" not in err
    assert re.search(case.match, err), err


SUBPROCESS = ["cli-mechanism-garbage-npz", "cli-run-directory-config", "cli-unknown-env",
              "cli-design-corrupt-store"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_real_command_prints_one_line(name: str, tmp_path: Path) -> None:
    case = next(c for c in CLI if c.id == name)
    assert case.argv is not None
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bilevel._cli import main; sys.exit(main())",
         *case.argv(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )
    assert proc.returncode == case.error, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(case.match, proc.stderr)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = _write(tmp_path, "g.npz", b"garbage")
    with pytest.raises(Exception, match="numpy cannot read"):
        main(["--debug", "evaluate", *ENV3x2, "--mechanism", bad])
    with pytest.raises(Exception, match="numpy cannot read"):
        main(["evaluate", *ENV3x2, "--mechanism", bad, "--debug"])
