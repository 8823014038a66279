"""A code-executing payload planted in every file type the library reads is refused, never run.

The payload is a pickle whose unpickling creates a marker file (``open(marker, "w")``, no shell
involved). It is planted in the run store's records (read by ``bilevel report``, ``reproduce``
resume and ``bilevel run`` resume), in a search checkpoint of the store, in saved mechanisms
(``.npz`` and ``.json``), in learned policies (``torch.save`` files read with
``weights_only=True``) and in configurations (``bilevel run`` on a pickle, and on a TOML whose
values are Python code). Every reader refuses it with a clear one-line error and the marker
never appears; :func:`test_the_payloads_are_live` shows the same payloads do create the marker
when loaded unsafely, so the refusals are not vacuous.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel import AMADesigner, load_mechanism, make_env
from bilevel._cli import main
from bilevel._experiment import run_experiment_report
from bilevel._store import ResultStore, StoreError
from bilevel.solvers.rl._policy import ActorCritic
from bilevel.spm._designer import SPMDesigner
from bilevel.stackelberg import load_stackelberg

ENV = make_env("sales", n_agents=2, n_items=1)


class _Plant:
    """Unpickling this creates ``marker`` (what ``os.system`` would do, without a shell)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def _payloads(marker: Path) -> dict[str, bytes]:
    """The payload as a binary pickle, an ASCII pickle (protocol 0, valid UTF-8) and garbage."""
    return {
        "pickle": pickle.dumps(_Plant(marker), protocol=pickle.HIGHEST_PROTOCOL),
        "ascii_pickle": pickle.dumps(_Plant(marker), protocol=0),
        "garbage": b"\x00\xffnot json\x80",
    }


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bilevel: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _plant_records(store_path: Path, raw: bytes, as_text: bool) -> int:
    """Replace every record's value by ``raw`` (as a BLOB or as text); the number replaced."""
    value: object = raw.decode("latin-1") if as_text else sqlite3.Binary(raw)
    con = sqlite3.connect(store_path)
    try:
        with con:
            n = con.execute("UPDATE records SET value = ?", (value,)).rowcount
    finally:
        con.close()
    return int(n)


# --- the run store's records ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pickle", "ascii_pickle", "garbage"])
@pytest.mark.parametrize("as_text", [False, True], ids=["blob", "text"])
def test_store_records_are_json_only(kind: str, as_text: bool, marker: Path,
                                     tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store.sqlite")
    store.put("table1/cell", {"mean": 0.5})
    assert _plant_records(store.path, _payloads(marker)[kind], as_text) == 1
    for read in (lambda: store.get("table1/cell"), lambda: store.items("table1/")):
        with pytest.raises(StoreError, match=r"store\.sqlite.*'table1/cell' is not JSON") as e:
            read()
        assert "\n" not in str(e.value)
        assert "never unpickled" in str(e.value)
    assert not marker.exists()


def test_reproduce_resume_and_report_refuse_a_planted_record(
    marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repro"
    args = ["reproduce", "table1", "--rows", "2x2", "--methods", "vcg", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert _plant_records(out / "store.sqlite", _payloads(marker)["pickle"], False) == 1
    _one_line_error(capsys, main(args), "store.sqlite", "is not JSON")  # resume
    _one_line_error(capsys, main(["report", str(out)]), "store.sqlite", "is not JSON")
    assert not marker.exists()


def _config(tmp_path: Path, body: str | None = None) -> Path:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(body if body is not None else (
        '[env]\nname = "sales"\nn_agents = 2\nn_items = 1\n\n'
        '[design]\nmethods = ["grid"]\nseeds = [0]\neval_samples = 40\n\n'
        "[budgets.grid]\nn_points = 4\nn_profiles = 10\n"
    ))
    return cfg


def test_run_resume_refuses_a_planted_record(
    marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, out = _config(tmp_path), tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    capsys.readouterr()
    assert _plant_records(out / "store.sqlite", _payloads(marker)["pickle"], True) == 1
    _one_line_error(capsys, main(["run", str(cfg), "--out", str(out)]), "store.sqlite",
                    "is not JSON")
    with pytest.raises(StoreError, match="is not JSON"):
        run_experiment_report(cfg, out=out)
    assert not marker.exists()


# --- search checkpoints in the store ----------------------------------------------------------


def test_a_planted_search_checkpoint_is_refused(marker: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "out" / "store.sqlite"
    design = AMADesigner(method="grid", n_points=4, n_profiles=10, eval_samples=0, seed=0,
                         checkpoint=store_path, checkpoint_every=0.0)
    ResultStore(store_path).put_blob(design.checkpoint_key(ENV), _payloads(marker)["pickle"])
    with pytest.raises(ValueError, match=r"pickle.*never loaded.*delete it to start over") as e:
        design.fit(ENV)
    assert "\n" not in str(e.value)
    assert not marker.exists()


# --- mechanisms -------------------------------------------------------------------------------


def _pickled_npz(path: Path, marker: Path, field: str) -> Path:
    """A mechanism archive whose ``field`` is an object array (pickled inside the .npz)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array("bilevel.ama/1"), "name": np.array("ama"),
        "weights": np.ones(ENV.n_agents), "boosts": np.zeros(ENV.mdp.shape),
        "meta": np.array("{}"),
    }
    arrays[field] = np.array([_Plant(marker)], dtype=object)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("field", ["format", "weights", "boosts", "meta"])
def test_a_mechanism_archive_with_a_pickled_array_is_refused(
    field: str, marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _pickled_npz(tmp_path / "mechanism.npz", marker, field)
    with pytest.raises(ValueError, match="expected a bilevel mechanism archive") as e:
        load_mechanism(path)
    assert "allow_pickle" not in str(e.value) and "\n" not in str(e.value)
    code = main(["evaluate", "sales", "--n-agents", "2", "--n-items", "1", "--samples", "10",
                 "--mechanism", str(path)])
    line = _one_line_error(capsys, code, "mechanism.npz")
    assert "allow_pickle" not in line
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("kind", ["pickle", "ascii_pickle"])
def test_a_mechanism_file_that_is_a_pickle_is_refused(
    suffix: str, kind: str, marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"mechanism{suffix}"
    path.write_bytes(_payloads(marker)[kind])
    with pytest.raises(ValueError, match="expected a bilevel mechanism") as e:
        load_mechanism(path)
    assert "allow_pickle" not in str(e.value) and "\n" not in str(e.value)
    code = main(["evaluate", "sales", "--n-agents", "2", "--n-items", "1", "--samples", "10",
                 "--mechanism", str(path)])
    _one_line_error(capsys, code, f"mechanism{suffix}")
    assert not marker.exists()


# --- learned policies (torch.save files, read with weights_only=True) -------------------------


def _torch_payload(path: Path, marker: Path, blob: dict[str, object]) -> Path:
    torch.save({**blob, "payload": _Plant(marker)}, path)
    return path


def test_a_policy_file_with_a_pickled_object_is_refused(marker: Path, tmp_path: Path) -> None:
    path = _torch_payload(tmp_path / "policy.pt", marker, {"args": {}, "state_dict": {}})
    with pytest.raises(ValueError, match=r"ActorCritic\.save.*policy\.pt.*never unpickled") as e:
        ActorCritic.load(path)
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
    assert not marker.exists()


def test_a_stackelberg_result_with_a_planted_policy_or_result_is_refused(
    marker: Path, tmp_path: Path
) -> None:
    d = tmp_path / "leader"
    d.mkdir()
    (d / "result.json").write_text(json.dumps({"game": "matrix_design", "leader_table": []}))
    _torch_payload(d / "policy.pt", marker, {"args": {}, "state_dict": {}})
    with pytest.raises(ValueError, match=r"policy\.pt.*never unpickled") as e:
        load_stackelberg(d)
    assert "\n" not in str(e.value)
    (d / "policy.pt").unlink()
    for kind in ("pickle", "ascii_pickle"):
        (d / "result.json").write_bytes(_payloads(marker)[kind])
        with pytest.raises(ValueError, match=r"result\.json.*not JSON") as e:
            load_stackelberg(d)
        assert "\n" not in str(e.value)
    assert not marker.exists()


def test_an_spm_designer_file_with_a_pickled_object_is_refused(
    marker: Path, tmp_path: Path
) -> None:
    path = _torch_payload(tmp_path / "spm.pt", marker, {"designer": {}, "policy": {}})
    with pytest.raises(ValueError, match=r"SPMDesigner\.save.*spm\.pt.*never unpickled") as e:
        SPMDesigner.load(path)
    assert "\n" not in str(e.value)
    # a raw pickle (not even a torch archive) is refused too
    (tmp_path / "raw.pt").write_bytes(_payloads(marker)["pickle"])
    with pytest.raises(ValueError, match=r"SPMDesigner\.save.*raw\.pt"):
        SPMDesigner.load(tmp_path / "raw.pt")
    assert not marker.exists()


# --- configurations ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pickle", "ascii_pickle"])
def test_a_config_that_is_a_pickle_is_refused(
    kind: str, marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_bytes(_payloads(marker)[kind])
    code = main(["run", str(cfg), "--out", str(tmp_path / "out")])
    _one_line_error(capsys, code, "exp.toml")
    with pytest.raises(ValueError, match=r"exp\.toml"):
        run_experiment_report(cfg, out=tmp_path / "out")
    assert not marker.exists()


def _code(marker: Path) -> str:
    """A Python expression creating the marker, as a TOML basic string."""
    return json.dumps(f"__import__('builtins').open({str(marker)!r}, 'w')")


_CODE_PLACES = {
    "env_name": ("name = \"sales\"", "name = {code}"),
    "env_dist": ("n_items = 1", "n_items = 1\ndist = {code}"),
    "env_param": ("n_items = 1", "n_items = {code}"),
    "method": ("methods = [\"grid\"]", "methods = [{code}]"),
    "seed": ("seeds = [0]", "seeds = [{code}]"),
    "objective": ("eval_samples = 40", "eval_samples = 40\nobjective = {code}"),
    "eval_samples": ("eval_samples = 40", "eval_samples = {code}"),
    "budget_value": ("n_points = 4", "n_points = {code}"),
    "budget_int": ("[budgets.grid]\nn_points = 4\nn_profiles = 10", "[budgets]\ngrid = {code}"),
    "budget_callback": ("n_points = 4", "n_points = 4\ncallback = {code}"),
    "budget_executor": ("n_points = 4", "n_points = 4\nexecutor = {code}"),
    "budget_unknown": ("n_points = 4", "n_points = 4\nloader = {code}"),
    "section": ("[budgets.grid]", "[python]\nrun = {code}\n\n[budgets.grid]"),
}


@pytest.mark.parametrize("place", list(_CODE_PLACES))
def test_python_code_in_a_config_is_never_evaluated(
    place: str, marker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _config(tmp_path).read_text()
    old, new = _CODE_PLACES[place]
    assert old in base
    cfg = _config(tmp_path, base.replace(old, new.format(code=_code(marker)), 1))
    code = main(["run", str(cfg), "--out", str(tmp_path / "out")])
    _one_line_error(capsys, code)
    assert not marker.exists()


# --- the payloads are live --------------------------------------------------------------------


def test_the_payloads_are_live(marker: Path, tmp_path: Path) -> None:
    """Loaded unsafely, each payload above does create the marker: the refusals are real."""
    for kind in ("pickle", "ascii_pickle"):
        pickle.loads(_payloads(marker)[kind]).close()
        assert marker.exists()
        marker.unlink()
    path = _torch_payload(tmp_path / "policy.pt", marker, {"args": {}, "state_dict": {}})
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()
    marker.unlink()
    npz = _pickled_npz(tmp_path / "m.npz", marker, "weights")
    with np.load(npz, allow_pickle=True) as z:
        z["weights"][0].close()
    assert marker.exists()
    marker.unlink()
    exec(json.loads(_code(marker)) + ".close()")  # the config strings, if they were evaluated
    assert marker.exists()
