"""Output directories (issue 13, items 5 and 6).

Item 5: unknown reproduce rows and directories holding nothing to report are one-line errors.
Item 6: a second process on a held ``--out`` fails fast with one line; reports, JSON and
mechanisms are written atomically (an interrupted write leaves the old file intact).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bilevel import AMA
from bilevel._cli import main
from bilevel._outdir import (
    OutDirInUseError,
    atomic_open,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    locked_outdir,
)
from bilevel._store import ResultStore
from bilevel.reproduce._run import reproduce

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from bilevel._cli import main; sys.exit(main(sys.argv[1:]))"
_REAL_FSYNC = os.fsync
DESIGN = ["design", "sales", "--n-agents", "2", "--n-items", "1", "--method", "grid",
          "--points", "4", "--profiles", "10", "--eval-samples", "20"]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- item 5
def test_unknown_reproduce_rows_are_an_error_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main(["reproduce", "table1", "--rows", "9x9", "--out", str(out)]) == 2
    assert _err(capsys) == ("bilevel: error: expected rows among 2x2, 3x2, 4x2, 5x2, 2x3, 3x3, "
                            "4x3, 5x3 for table1, got 9x9")
    assert not out.exists()
    with pytest.raises(ValueError, match=r"expected rows among .* for table1, table2, got 9x9"):
        reproduce([1, 2], rows=["3x2", "9x9"], out=out)
    with pytest.raises(ValueError, match=r"among 2x4, 2x5, 3x4, 3x5 for table3, got 3x2$"):
        reproduce([3], rows=["2x4", "3x2"], out=out)  # Table 3 has no 3x2 row
    assert not out.exists()


def _report_error(capsys: pytest.CaptureFixture[str], d: Path) -> str:
    assert main(["report", str(d)]) == 2
    return _err(capsys)


def test_report_on_a_directory_without_reproduce_cells_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = "bilevel: error: expected a reproduce output directory with stored cells, got"
    (tmp_path / "none").mkdir()
    assert _report_error(capsys, tmp_path / "none") == f"{expected} {tmp_path / 'none'} " \
        "(no store.sqlite)"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "store.sqlite").write_bytes(b"")
    assert _report_error(capsys, empty) == f"{expected} {empty} (store.sqlite is empty)"
    assert (empty / "store.sqlite").stat().st_size == 0  # left as it was
    design = tmp_path / "design"
    assert main([*DESIGN, "--out", str(design)]) == 0
    capsys.readouterr()
    assert _report_error(capsys, design) == (
        f"{expected} {design} (store.sqlite holds no reproduce cells)")
    run = tmp_path / "run"  # a `bilevel run` store: cells without a table
    ResultStore(run / "store.sqlite").put("grid/seed0/abc", {"method": "grid", "seed": 0})
    assert _report_error(capsys, run) == f"{expected} {run} (store.sqlite holds no reproduce cells)"
    stale = tmp_path / "stale"
    ResultStore(stale / "store.sqlite").put(
        "table1/old", {"key": "table1/old", "table": 1, "protocol": "quick"})
    assert _report_error(capsys, stale) == (
        f"{expected} {stale} (store.sqlite holds only 1 cell(s) of earlier versions of a "
        "protocol)")
    assert not list(stale.glob("table*"))


# ---------------------------------------------------------------- item 6: the lock
@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """``tmp_path / "out"`` held by another process; yields (directory, its pid)."""
    out = tmp_path / "out"
    code = ("import importlib.util as u, sys\n"  # the module alone: a fast start
            "spec = u.spec_from_file_location('outdir', sys.argv[2])\n"
            "m = u.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "with m.locked_outdir(sys.argv[1]):\n"
            "    print('locked', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out),
                             str(ROOT / "bilevel" / "_outdir.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield out, proc.pid
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()


def _busy(out: Path, pid: int) -> str:
    return (f"bilevel: error: {out} is in use by another bilevel process (pid {pid}); wait for "
            "it or choose another --out")


def test_a_second_process_on_a_held_directory_fails_fast_with_one_line(
    held: tuple[Path, int], tmp_path: Path
) -> None:
    out, pid = held
    res = subprocess.run([sys.executable, "-c", CLI, *DESIGN, "--out", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [_busy(out, pid)]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written


@pytest.mark.parametrize("argv", [
    ["reproduce", "table1", "--rows", "2x2", "--methods", "bound"],
    ["run", str(ROOT / "examples" / "sales_experiment.toml")],
    ["spm", "two_worlds", "--steps", "10"],
    ["stackelberg", "simple_allocation:2", "--steps", "10"],
], ids=["reproduce", "run", "spm", "stackelberg"])
def test_every_command_that_writes_out_takes_the_lock(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with locked_outdir(out):  # another open file description conflicts like another process
        assert main([*argv, "--out", str(out)]) == 1
    assert _err(capsys) == _busy(out, os.getpid())
    assert not out.exists()  # nothing was written into it


def test_run_locks_the_configured_output_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with locked_outdir("out/sales-experiment"):  # the example's [output] dir
        assert main(["run", str(ROOT / "examples" / "sales_experiment.toml")]) == 1
    assert _err(capsys) == _busy(Path("out/sales-experiment"), os.getpid())


def test_the_lock_is_released_and_a_failed_command_leaves_no_directory(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with locked_outdir(out) as d:
        assert d == out and (out / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(OutDirInUseError, match="in use by another bilevel process"), \
                locked_outdir(out):  # another open file description: refused too
            pass
    assert not out.exists()  # created here, nothing written: removed
    out.mkdir(parents=True)
    with locked_outdir(out):
        (out / "x.txt").write_text("x")
    with locked_outdir(out):  # released: free again
        pass
    assert sorted(p.name for p in out.iterdir()) == [".lock", "x.txt"]
    f = tmp_path / "file"
    f.write_text("")
    with locked_outdir(f) as d:  # not a directory: the command's own write reports it
        assert d == f


# ---------------------------------------------------------------- item 6: atomic writes
class BoomError(RuntimeError):
    pass


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    p = tmp_path / "report.md"
    p.write_text("old report\n")

    def half(f: Any) -> None:
        f.write(b"new, half")
        raise BoomError

    with pytest.raises(BoomError):
        atomic_write(p, half)
    assert p.read_text() == "old report\n" and _leftovers(tmp_path) == []
    with pytest.raises(BoomError), atomic_open(p, "w", newline="") as f:
        f.write("half a csv")
        raise BoomError
    assert p.read_text() == "old report\n" and _leftovers(tmp_path) == []
    atomic_write_text(p, "new report\n")
    assert p.read_text() == "new report\n"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (p.stat().st_mode & 0o777) == (0o666 & ~_umask())
    assert _leftovers(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _fail_before_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every atomic write dies after writing its temporary file, before the rename."""

    def boom(fd: int) -> None:
        raise BoomError

    monkeypatch.setattr(os, "fsync", boom)


def _fail_at(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The n-th atomic write from now dies before its rename; the others go through."""
    calls = {"n": 0}
    real = _REAL_FSYNC

    def once(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == n:
            raise BoomError
        real(fd)

    monkeypatch.setattr(os, "fsync", once)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_an_interrupted_mechanism_save_keeps_the_old_mechanism(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bilevel import load_mechanism

    p = AMA(np.ones(2), np.zeros((3, 2)), name="old").save(tmp_path / f"m{suffix}")
    before = _snapshot(tmp_path)
    new = AMA(np.full(2, 2.0), np.ones((3, 2)), name="new")
    with monkeypatch.context() as m:
        _fail_before_rename(m)
        with pytest.raises(BoomError):
            new.save(p)
    assert _snapshot(tmp_path) == before  # old file intact, no temporary file left
    assert load_mechanism(p).name == "old"
    new.save(p)
    assert load_mechanism(p).name == "new"


def test_interrupted_design_and_reproduce_reports_keep_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bilevel import AMADesigner, make_env
    from bilevel._report import write_design
    from bilevel.reproduce._budget import QUICK
    from bilevel.reproduce._report import write_reports

    env = make_env("sales", n_agents=2, n_items=1)
    d = AMADesigner(n_points=4, n_profiles=10, eval_samples=20).fit(env)
    write_design(tmp_path, env, d.result_)
    write_reports(tmp_path, 1, [], QUICK)
    before = _snapshot(tmp_path)
    assert {"mechanism.json", "report.md", "result.json", "table1.md", "table1.csv",
            "table1.json"} <= set(before)
    other = AMADesigner(n_points=4, n_profiles=10, eval_samples=20, seed=1).fit(env)
    with monkeypatch.context() as m:
        for i, k in enumerate(("mechanism.json", "report.md", "result.json")):
            _fail_at(m, i + 1)
            before = _snapshot(tmp_path)
            with pytest.raises(BoomError):
                write_design(tmp_path, env, other.result_)
            after = _snapshot(tmp_path)
            assert after[k] == before[k], k
            assert not [k for k in after if k.endswith(".tmp")]
        for name in ("md", "csv", "json"):  # every file of the table, one after the other
            before = _snapshot(tmp_path)
            _fail_at(m, ("md", "json", "csv").index(name) + 1)  # the order of the writes
            m.setattr("bilevel.reproduce.table_report",
                      lambda *a, **k: ([{"row": "n=2 m=2", "x": 1}], "# new\n"))
            with pytest.raises(BoomError):
                write_reports(tmp_path, 1, [], QUICK)
            after = _snapshot(tmp_path)
            assert after[f"table1.{name}"] == before[f"table1.{name}"], name
            assert not [k for k in after if k.endswith(".tmp")]


def test_an_interrupted_experiment_report_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bilevel._experiment import run_experiment_report

    cfg = tmp_path / "tiny.toml"
    cfg.write_text('[env]\nname = "sales"\nn_agents = 2\nn_items = 1\n'
                   '[design]\nmethods = ["grid"]\nseeds = [0]\neval_samples = 50\n'
                   '[budgets.grid]\nn_points = 4\nn_profiles = 10\n')
    out = tmp_path / "out"
    run_experiment_report(cfg, out=out)
    before = {k: v for k, v in _snapshot(out).items() if not k.startswith("store.sqlite")}
    assert {"experiment.md", "experiment.csv", "experiment.json", "grid-seed0.json"} <= set(before)
    with monkeypatch.context() as m:
        _fail_before_rename(m)
        with pytest.raises(BoomError):
            run_experiment_report(cfg, out=out)  # the stored cell comes back, the writes fail
    after = {k: v for k, v in _snapshot(out).items() if not k.startswith("store.sqlite")}
    assert after == before
