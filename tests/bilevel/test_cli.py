"""The ``bilevel`` command line: every subcommand, JSON output, files, errors, and
``--checkpoint-every`` reaching the designers without changing any result."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bilevel import AMADesigner, load_mechanism
from bilevel._cli import build_parser, main
from bilevel._store import ResultStore
from bilevel.models import Environment
from bilevel.reproduce._budget import QUICK
from bilevel.reproduce._paper import paper_rows
from bilevel.reproduce._run import cell_key, run_cell


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_envs_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["envs", "--json"])
    assert isinstance(out, list)
    assert {e["name"] for e in out} == {"sales", "scheduling", "gridworld", "matching"}


def test_evaluate_vcg_json_has_required_keys(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["evaluate", "sales", "--n-agents", "3", "--n-items", "2",
                         "--samples", "4000", "--seed", "3", "--json"])
    assert isinstance(out, dict)
    for key in ("objective", "mean", "se", "revenue", "revenue_se", "welfare", "welfare_se",
                "n_samples"):
        assert key in out
    assert out["n_samples"] == 4000
    # analytic VCG revenue m(n - m)/(n + 1) = 0.5
    assert abs(out["mean"] - 0.5) < 4 * out["se"]


def test_design_writes_loadable_mechanism(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    out = _json(capsys, ["design", "sales", "--n-agents", "3", "--n-items", "2", "--method",
                         "grid", "--points", "32", "--profiles", "200", "--eval-samples",
                         "1000", "--seed", "1", "--out", str(out_dir), "--json"])
    assert isinstance(out, dict)
    assert (out_dir / "mechanism.json").exists()
    report = (out_dir / "report.md").read_text()
    assert "Comparison with VCG" in report
    mech = load_mechanism(out_dir / "mechanism.json")
    assert mech.boosts.shape == (5, 4)
    np.testing.assert_allclose(mech.boosts, np.asarray(out["mechanism"]["boosts"]), rtol=0,
                               atol=0)
    ev = _json(capsys, ["evaluate", "sales", "--n-agents", "3", "--n-items", "2",
                        "--mechanism", str(out_dir / "mechanism.json"), "--samples", "500",
                        "--json"])
    assert isinstance(ev, dict) and ev["baseline"] == "vcg"
    # the designed AMA and the VCG baseline are audited on 200 profiles: 0 up to rounding
    assert set(ev["exploitability"]) == {"mechanism", "vcg"}
    for audit in ev["exploitability"].values():
        assert audit["n_profiles"] == 200 and 0 <= audit["total"] <= 1e-9


def test_design_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["design", "scheduling", "--n-agents", "2", "--tasks", "3", "--makespan",
                 "reference", "--points", "16", "--profiles", "100", "--eval-samples",
                 "500"]) == 0
    text = capsys.readouterr().out
    assert "VCG" in text and "makespan (mean ± se)" in text


# ---------------------------------------------------------------------- exploitability column
# VCG, the optimal mechanism and any designed AMA are truthful: the audit of each row is 0 up
# to rounding (<= 1e-9), a lower bound from the default grid search over continuous values.

_SMALL = ["sales", "--n-agents", "2", "--n-items", "1"]


def test_evaluate_reports_exploitability(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["evaluate", *_SMALL, "--samples", "300", "--exploitability", "50",
                         "--json"])
    assert isinstance(out, dict) and set(out["exploitability"]) == {"mechanism"}
    audit = out["exploitability"]["mechanism"]
    assert audit["n_profiles"] == 50 and audit["kind"] == "lower_bound"
    assert 0 <= audit["total"] <= 1e-9 and max(audit["per_agent"]) <= 1e-9
    assert main(["evaluate", *_SMALL, "--samples", "300", "--exploitability", "50"]) == 0
    text = capsys.readouterr().out
    header, _, *rows = text.splitlines()[1:5]
    assert header.split("  ")[-1].strip() == "exploitability (kind)"
    assert [r.split()[0] for r in rows] == ["vcg", "optimal"]
    assert all(r.rstrip().endswith("0.0000 (lower bound)") for r in rows)
    assert "Exploitability: summed best misreport gain at truth (ex-post" in text
    # --exploitability 0: the outputs of before
    off = _json(capsys, ["evaluate", *_SMALL, "--samples", "300", "--exploitability", "0",
                         "--json"])
    assert isinstance(off, dict) and "exploitability" not in off
    assert main(["evaluate", *_SMALL, "--samples", "300", "--exploitability", "0"]) == 0
    assert "exploitability" not in capsys.readouterr().out.lower()


def test_design_reports_exploitability(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["design", *_SMALL, "--points", "8", "--profiles", "100", "--eval-samples", "400",
            "--exploitability", "40", "--seed", "2"]
    out = _json(capsys, [*argv, "--out", str(tmp_path), "--json"])
    assert isinstance(out, dict)
    audits = out["exploitability"]
    assert set(audits) == {"vcg", "optimal", "mechanism"}
    for role in ("vcg", "mechanism", "optimal"):
        assert audits[role]["n_profiles"] == 40 and audits[role]["total"] <= 1e-9
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["exploitability"] == audits
    report = (tmp_path / "report.md").read_text()
    assert "| exploitability (kind) |" in report
    assert report.count("| 0.0000 (lower bound) |") == 3
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "exploitability (kind)" in text and text.count("0.0000 (lower bound)") == 3


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["evaluate", "sales", "--tasks", "3"], "--tasks applies to scheduling only"),
        (["evaluate", "nope"], "expected an environment name"),
        (["evaluate", "sales", "--dist", "normal"], "expected dist"),
        (["evaluate", "sales", "--mechanism", "missing.json"], "not found"),
        (["evaluate", "sales", "--samples", "0"], "expected --samples >= 1"),
        (["design", "sales", "--points", "0"], "n_points"),
        (["evaluate", "sales", "--exploitability", "-1"], "expected --exploitability >= 0"),
        (["design", "sales", "--exploitability", "-1"], "expected --exploitability >= 0"),
    ],
)
def test_cli_errors(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_mechanism_for_other_env_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["design", "sales", "--n-agents", "2", "--n-items", "2", "--points", "4",
                 "--profiles", "20", "--eval-samples", "0", "--out", str(tmp_path),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "sales", "--n-agents", "3", "--mechanism",
                 str(tmp_path / "mechanism.json")]) == 2
    assert "expected a mechanism for 3 agents" in capsys.readouterr().err


def test_cli_design_cma(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["design", "sales", "--n-agents", "2", "--n-items", "1", "--method", "cma",
                 "--evals", "24", "--scan", "16", "--profiles", "200", "--validation", "100",
                 "--eval-samples", "300", "--tyings", "action", "--json"])
    assert code == 0
    assert '"ama-cma"' in capsys.readouterr().out
    assert main(["design", "sales", "--method", "cma", "--evals", "ten"]) == 2


def test_cli_design_takes_checkpoint_every(tmp_path: Path) -> None:
    args = build_parser().parse_args(["design", "sales", "--checkpoint-every", "2.5"])
    assert args.checkpoint_every == 2.5
    assert build_parser().parse_args(["design", "sales"]).checkpoint_every == 30.0


# ---------------------------------------------------------------------- --checkpoint-every
# ``bilevel run`` and ``bilevel reproduce`` pass it to the designer and the store, and neither
# the results nor the cells' keys depend on it.

_CONFIG = (
    '[env]\nname = "sales"\nn_agents = 2\nn_items = 1\n\n'
    '[design]\nmethods = ["grid", "zeroth_order"]\nseeds = [0]\neval_samples = 40\n\n'
    "[budgets.grid]\nn_points = 4\nn_profiles = 10\n\n"
    "[budgets.zeroth_order]\nsteps = 3\nn_profiles = 3\nn_perturbations = 2\n"
    "n_validation = 10\neval_every = 1\n"
)
_TINY = QUICK.__class__(
    "quick", grid_points=8, grid_profiles=10, iters=3, multistart_points=8, eval_samples=40,
    n_validation=10, trials=1, estimator="envelope", optimizer="adam")


@pytest.mark.parametrize("command", [["run", "x.toml"], ["reproduce", "table1"]])
def test_the_cli_takes_checkpoint_every(command: list[str]) -> None:
    assert build_parser().parse_args(command).checkpoint_every == 30.0
    assert build_parser().parse_args([*command, "--checkpoint-every", "0"]).checkpoint_every == 0
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*command, "--checkpoint-every", "-1"])
    assert e.value.code == 2


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each AMADesigner.fit's checkpoint settings and whether its checkpoint was written."""
    seen: list[dict[str, Any]] = []
    fit = AMADesigner.fit

    def spy(self: AMADesigner, env: Environment) -> AMADesigner:
        out = fit(self, env)
        saved = None
        if isinstance(self.checkpoint, (str, Path)):
            saved = ResultStore(self.checkpoint).get_blob(self.checkpoint_key(env)) is not None
        seen.append({"method": self.method, "every": self.checkpoint_every,
                     "store": self.checkpoint, "saved": saved})
        return out

    monkeypatch.setattr(AMADesigner, "fit", spy)
    return seen


def _no_runtime(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != "runtime"}


def _run_rows(out: Path) -> list[dict[str, Any]]:
    rows = json.loads((out / "experiment.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_run_passes_checkpoint_every_and_results_do_not_depend_on_it(
    tmp_path: Path, fits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(_CONFIG)
    outs = {}
    for every in ("0", "30"):
        out = tmp_path / f"every{every}"
        assert main(["run", str(cfg), "--out", str(out), "--checkpoint-every", every]) == 0
        outs[every] = out
    capsys.readouterr()
    assert [(f["method"], f["every"]) for f in fits] == [
        ("grid", 0.0), ("zeroth_order", 0.0), ("grid", 30.0), ("zeroth_order", 30.0)]
    # the search checkpointed into the run's store (then the finished cell superseded it)
    assert all(f["saved"] for f in fits)
    assert {Path(f["store"]).parent for f in fits} == set(outs.values())
    stores = {k: ResultStore(v / "store.sqlite") for k, v in outs.items()}
    for s in stores.values():
        with sqlite3.connect(s.path) as con:
            assert con.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
    keys = {k: [key for key, _ in s.items()] for k, s in stores.items()}
    assert keys["0"] == keys["30"] and len(keys["0"]) == 2
    assert _run_rows(outs["0"]) == _run_rows(outs["30"])
    for name in ("grid-seed0.json", "zeroth_order-seed0.json"):
        assert (outs["0"] / name).read_text() == (outs["30"] / name).read_text()


def test_run_cell_passes_checkpoint_every_and_results_do_not_depend_on_it(
    tmp_path: Path, fits: list[dict[str, Any]]
) -> None:
    row = next(r for r in paper_rows(1) if (r.n_agents, r.size) == (2, 2))
    recs = {}
    for every in (0.0, 30.0):
        store = tmp_path / f"every{every:g}" / "store.sqlite"
        recs[every] = [run_cell(row, m, _TINY, store, checkpoint_every=every)
                       for m in ("grid", "zeroth_order")]
    assert [(f["method"], f["every"], f["saved"]) for f in fits] == [
        (m, e, True) for e in (0.0, 30.0) for m in ("grid", "zeroth_order")]
    for a, b in zip(recs[0.0], recs[30.0], strict=True):
        assert a["key"] == b["key"] == cell_key(row, a["method"], _TINY)
        assert a["checkpoint_key"] == b["checkpoint_key"]
        for field in ("mechanism", "history", "vs_optimal"):
            assert a[field] == b[field], field
        assert _no_runtime(a["evaluation"]) == _no_runtime(b["evaluation"])


def test_reproduce_passes_checkpoint_every(
    tmp_path: Path, fits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import bilevel.reproduce as rep

    monkeypatch.setattr(rep, "QUICK", _TINY)
    out = tmp_path / "repro"
    assert main(["reproduce", "table1", "--rows", "2x2", "--methods", "grid", "--out", str(out),
                 "--checkpoint-every", "0"]) == 0
    capsys.readouterr()
    assert [(f["method"], f["every"], f["saved"]) for f in fits] == [("grid", 0.0, True)]
    assert Path(fits[0]["store"]) == out / "store.sqlite"


# ---------------------------------------------------------------------- custom environments

_FACTORY = "tests.models.factories:auction"
_QUICK_DESIGN = ["--points", "32", "--profiles", "100", "--eval-samples", "300",
                 "--exploitability", "0"]


def _bilevel(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("bilevel")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def test_design_takes_a_module_function_factory_and_workers_do_not_change_it() -> None:
    from tests import ROOT

    outs = []
    for workers in ("1", "2"):
        proc = _bilevel(["design", _FACTORY, "--n-agents", "2", *_QUICK_DESIGN, "--json",
                         "--workers", workers], ROOT)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    assert outs[0]["mechanism"] == outs[1]["mechanism"]
    assert outs[0]["evaluation"] == {**outs[1]["evaluation"],
                                     "runtime": outs[0]["evaluation"]["runtime"]}


@pytest.mark.parametrize("spec, fragment", [
    ("no_such_module_xyz:auction", "expected an importable module in environment factory"),
    ("tests.models.factories:nope", "to define 'nope'"),
    ("a:b:c", "expected an environment factory as 'package.module:function'"),
])
def test_a_bad_factory_spec_is_one_line_without_traceback(
    spec: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["design", spec, *_QUICK_DESIGN]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and err.count("\n") == 1


def test_factory_options_pass_through_and_unknown_ones_are_refused(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", _FACTORY, "--n-agents", "3", "--samples", "50",
                 "--exploitability", "0", "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", _FACTORY, "--n-items", "2", "--samples", "50"]) == 2
    assert "got unknown ['n_items']" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from bilevel import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"bilevel {__version__}\n"


def test_design_says_what_it_saved_resumed_or_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["design", "sales", "--n-agents", "2", "--n-items", "1", *_QUICK_DESIGN]) == 0
    out = capsys.readouterr().out
    assert "nothing saved (no --out DIR" in out and "replayed" not in out
    search, total = (float(x) for x in
                     re.search(r"\((\d+\.\d) s\); total (\d+\.\d) s", out).groups())  # type: ignore[union-attr]
    assert search <= total
    argv = ["design", "sales", "--n-agents", "2", "--n-items", "1", *_QUICK_DESIGN,
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "nothing saved" not in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "replayed the finished search stored in" in out and "over all runs" in out
