"""The data-only format of search states: exact round trips, and refusal of anything else."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bilevel import AMA, AMADesigner, make_env
from bilevel.search import (
    CMAES,
    FirstOrder,
    GridSearch,
    MultiStart,
    ZerothOrder,
)
from bilevel.search._cma import CMAESState, _ensure_rewards
from bilevel.search._serialize import FORMAT, VERSION, dumps, loads, register

ENV = make_env("sales", n_agents=3, n_items=2)


def _same(a: Any, b: Any) -> bool:
    """Exact equality, types and dtypes included (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and (a == b or bool(np.isnan(a) and np.isnan(b)))
    if isinstance(a, torch.Tensor):
        return (a.dtype == b.dtype and a.device == b.device
                and a.requires_grad == b.requires_grad and torch.equal(a.detach(), b.detach()))
    if isinstance(a, np.random.Generator):
        return _same(a.bit_generator.state, b.bit_generator.state)
    if isinstance(a, AMA):
        return _same(a.to_dict(), b.to_dict())
    if isinstance(a, torch.optim.Optimizer):
        return _same(a.state_dict(), b.state_dict())
    if dataclasses.is_dataclass(a):  # a first-order state's inner solver is rebuilt, not data
        return all(_same(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a) if f.name != "inner")
    return bool(a == b)


# ---------------------------------------------------------------------- supported values

VALUES: dict[str, Any] = {
    "none": None,
    "bools": [True, False],
    "ints": [0, -7, 2**200],
    "floats": [0.1, -0.0, 1e308, 5e-324, math.nan, math.inf, -math.inf],
    "str": "héllo\n\"quoted\"",
    "bytes": b"\x00\x80PK",
    "nested": [(1, (2.5, [None])), {"a": [()]}],
    "keys": {1: "int one", "1": "str one", 0: {"x": 2}},
    "f64": np.linspace(0, 1, 12).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "ints32": np.arange(5, dtype=np.int32),
    "bool_arr": np.array([True, False]),
    "empty": np.zeros((0, 3)),
    "0d": np.array(3.5),
    "complex": np.array([1 + 2j], dtype=np.complex64),
    "scalars": [np.float32(1.5), np.int8(-3), np.uint64(2**63), np.bool_(True), np.float64("nan")],
    "tensor": torch.tensor([[1.0, 2.0]], dtype=torch.float64, requires_grad=True),
    "tensor32": torch.arange(4, dtype=torch.float32),
    "tensor_int": torch.tensor([3, 4], dtype=torch.int64),
    "bfloat16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
    "tensor_bool": torch.tensor([True]),
    "pcg": np.random.default_rng(5),
    "spawned": np.random.default_rng(np.random.SeedSequence([3, 2]).spawn(2)[1]),
    "mt": np.random.Generator(np.random.MT19937(9)),
    "philox": np.random.Generator(np.random.Philox(9)),
    "sfc": np.random.Generator(np.random.SFC64(9)),
    "dxsm": np.random.Generator(np.random.PCG64DXSM(9)),
    "ama": AMA([1.0, 2.0, 0.5], np.full(ENV.mdp.shape, -0.25), name="x",
               meta={"sobol_index": 3, "selection": [["a", 0.5]]}),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_supported_value_round_trips_exactly(name: str) -> None:
    value = VALUES[name]
    back = loads(dumps(value))
    assert _same(value, back), (value, back)


def test_round_trip_keeps_layout_writability_and_leaves() -> None:
    back = loads(dumps(VALUES))
    assert back["fortran"].flags.f_contiguous
    assert back["f64"].flags.writeable
    back["f64"][0, 0] = 9.0  # own memory
    t = back["tensor"]
    assert t.is_leaf and t.requires_grad
    (t * 2).sum().backward()
    assert t.grad is not None
    assert isinstance(back["keys"][1], str) and back["keys"][1] != back["keys"]["1"]
    assert isinstance(back["nested"][0], tuple) and isinstance(back["nested"][1]["a"][0], tuple)


def test_generators_continue_and_spawn_exactly() -> None:
    for name in ("pcg", "spawned", "mt", "philox", "sfc", "dxsm"):
        g = VALUES[name]
        g.random(3)
        h = loads(dumps(g))
        np.testing.assert_array_equal(h.random(5), g.random(5))
        if name in ("pcg", "spawned"):  # spawn continues the seed sequence's children
            g.spawn(1)
            h = loads(dumps(g))
            np.testing.assert_array_equal(h.spawn(2)[1].random(3), g.spawn(2)[1].random(3))


def test_cuda_free_device_and_dtype_are_kept() -> None:
    t = torch.zeros(2, dtype=torch.float16, device="cpu")
    back = loads(dumps(t))
    assert back.dtype == torch.float16 and back.device.type == "cpu" and not back.requires_grad


# ---------------------------------------------------------------------- unsupported values


class _Custom:
    pass


@dataclasses.dataclass
class _NotRegistered:
    x: int = 0


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (_Custom(), "_Custom"),
        (_NotRegistered(), "_NotRegistered"),
        ({1.5: "x"}, "dict key of type float"),
        ({(1, 2): "x"}, "dict key of type tuple"),
        (np.array([object()], dtype=object), "dtype object"),
        ({1, 2}, "set"),
        (lambda x: x, "function"),
        (open, "builtin_function_or_method"),
        (np.random.RandomState(0), "RandomState"),
        (torch.nn.Linear(2, 2), "Linear"),
        (torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "SGD"),
        (ThreadPoolExecutor, "type"),
        (np.random.default_rng(0).bit_generator, "PCG64"),
        (1 + 2j, "complex"),
    ],
)
def test_dumps_of_an_unsupported_object_names_its_type(value: Any, fragment: str) -> None:
    with pytest.raises(TypeError, match=fragment):
        dumps({"state": [value]})


def test_only_registered_dataclasses_and_no_subclasses() -> None:
    class Sub(FirstOrder):
        pass

    with pytest.raises(TypeError, match="Sub"):
        dumps(Sub())
    with pytest.raises(ValueError, match="already registered"):
        register(_NotRegistered, "bilevel.search.GridState")


def test_searcher_configurations_round_trip_without_their_executor() -> None:
    with ThreadPoolExecutor(1) as pool:
        g = GridSearch(n_points=8, n_profiles=5, executor=pool)
        back = loads(dumps(g))
    assert back == g and back.executor is None
    fo = FirstOrder(iters=3, start=VALUES["ama"], optimizer="sgd")
    assert _same(loads(dumps(fo)), fo)
    zo = ZerothOrder(iters=2, sigma=0.3)
    assert loads(dumps(zo)) == zo
    with pytest.raises(TypeError, match="function"):  # a callable inner solver is not data
        dumps(FirstOrder(inner=lambda c: c))


# ---------------------------------------------------------------------- refused blobs


def test_a_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    class Plant:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        blob = pickle.dumps({"format": 2, "state": Plant()}, protocol=protocol)
        with pytest.raises(ValueError, match="expected a bilevel search state") as e:
            loads(blob)
        assert "\n" not in str(e.value)
        assert not marker.exists()
    with pytest.raises(ValueError, match="got a pickle"):
        loads(pickle.dumps(Plant(), protocol=pickle.HIGHEST_PROTOCOL))
    assert not marker.exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npz(doc: Any, **arrays: Any) -> bytes:
    buf = io.BytesIO()
    tree = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    np.savez(buf, tree=tree, **arrays)
    return buf.getvalue()


def _npy(a: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _object_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, tree=np.array([{"a": 1}], dtype=object))  # pickled inside
    return buf.getvalue()


def _doc(root: Any, **over: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "root": root, **over}


GOOD = dumps({"a": np.arange(100.0), "rng": np.random.default_rng(1)})

BAD: dict[str, bytes] = {
    "empty": b"",
    "garbage": b"\x00\x01garbage bytes",
    "text": b"{'format': 2}",
    "npy": _npy(np.arange(3)),
    "truncated_half": GOOD[: len(GOOD) // 2],
    "truncated_tail": GOOD[:-10],
    "zip_magic_only": b"PK\x03\x04",
    "zip_without_tree": _zip({"a0.npy": b"x"}),
    "zip_with_pickle_member": _zip({"tree.npy": pickle.dumps(["x"])}),
    "object_array_member": _object_npz(),
    "tree_not_json": _npz(None).replace(b"null", b"nul!"),
    "other_format": _npz({"format": "something", "version": 1, "root": None}),
    "newer_version": _npz(_doc(None, version=VERSION + 1)),
    "older_version": _npz(_doc(None, version=0)),
    "unknown_class": _npz(_doc({"$": "dataclass", "class": "os.system", "fields": {}})),
    "unknown_class_qualname": _npz(_doc({"$": "dataclass", "class": "subprocess.Popen",
                                         "fields": {"args": "touch x"}})),
    "unknown_tag": _npz(_doc({"$": "pickle", "data": "gASV"})),
    "bad_fields": _npz(_doc({"$": "dataclass", "class": "bilevel.search.GridState",
                             "fields": {"weights": None}})),
    "missing_array": _npz(_doc({"$": "ndarray", "ref": "a7"})),
    "unknown_bit_generator": _npz(_doc({"$": "generator", "bit_generator": "os.system",
                                        "state": {}, "seed_seq": {}})),
    "bad_generator_state": _npz(_doc({"$": "generator", "bit_generator": "PCG64",
                                      "state": {"$": "dict", "items": [["x", 1]]},
                                      "seed_seq": {"$": "dict", "items": [["entropy", 1]]}})),
    "bad_tensor_dtype": _npz(_doc({"$": "tensor", "ref": "a0", "dtype": "torch.Tensor",
                                   "device": "cpu", "requires_grad": False}),
                             a0=np.zeros(2)),
    "duplicate_key": _npz(_doc({"$": "dict", "items": [[1, 2], [1, 3]]})),
    "bad_ama": _npz(_doc({"$": "ama", "data": {"$": "dict", "items": [["format", "x"]]}})),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_blob_that_is_not_this_format_is_refused_on_one_line(name: str) -> None:
    with pytest.raises(ValueError, match="expected a bilevel search state") as e:
        loads(BAD[name])
    assert "\n" not in str(e.value)


def test_version_messages_say_which_version() -> None:
    with pytest.raises(ValueError, match="newer version"):
        loads(BAD["newer_version"])
    with pytest.raises(ValueError, match=r"unknown class 'os\.system'"):
        loads(BAD["unknown_class"])
    with pytest.raises(TypeError, match="expected bytes"):
        loads("PK")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- searcher states


def _problem() -> Any:
    return AMADesigner(method="grid")._validate(ENV)


def _asym_problem() -> Any:
    env = make_env("sales", n_agents=2, n_items=2, dist="asymmetric")
    return AMADesigner(method="grid")._validate(env)


SEARCHERS: dict[str, Any] = {
    "grid": GridSearch(n_points=24, n_profiles=20, batch_candidates=4),
    "first_order_adam": FirstOrder(iters=7, n_profiles=4),
    "first_order_sgd": FirstOrder(iters=7, n_profiles=4, optimizer="sgd"),
    "first_order_envelope": FirstOrder(iters=6, n_profiles=4, estimator="envelope"),
    "zeroth_order": ZerothOrder(iters=7, n_profiles=4, n_perturbations=3),
    "multistart": MultiStart(
        grid=GridSearch(n_points=12, n_profiles=15, batch_candidates=4),
        refine=(ZerothOrder(iters=4, n_profiles=3, n_perturbations=2),
                FirstOrder(iters=4, n_profiles=3)),
        n_starts=2, n_select=30, n_final=40, validate_every=2,
    ),
    "cma": CMAES(evals=(24, 24), n_profiles=40, n_scan=64, n_starts=2, popsize=6),
}


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_every_searcher_state_round_trips_and_resumes_bit_identically(
    name: str, weights: bool
) -> None:
    searcher = SEARCHERS[name]
    problem = _asym_problem() if weights else _problem()
    if weights:
        assert problem.optimise_weights

    def run(state: Any) -> Any:
        while not searcher.done(state):
            state = searcher.step(problem, state)
        return state

    full = run(searcher.init(problem, np.random.default_rng(11)))
    for k in (0, 1, 3, 5):
        state = searcher.init(problem, np.random.default_rng(11))
        for _ in range(k):
            if not searcher.done(state):
                state = searcher.step(problem, state)
        blob = dumps(state)
        back = loads(blob)
        assert type(back) is type(state)
        if isinstance(state, CMAESState):  # derived rewards are recomputed, never saved
            assert back.rewards == [] and back.cf_rewards == []
            _ensure_rewards(problem, back)
        assert _same(back, state)
        resumed = run(back)
        m1, s1 = searcher.best(full)
        m2, s2 = searcher.best(resumed)
        np.testing.assert_array_equal(m2.weights, m1.weights)
        np.testing.assert_array_equal(m2.boosts, m1.boosts)
        assert _same(s2, s1)
        assert searcher.history(resumed) == searcher.history(full)


def test_first_order_state_rebuilds_its_optimiser_around_the_loaded_tensors() -> None:
    s = FirstOrder(iters=5, n_profiles=4, lr=0.03)
    problem = _problem()
    state = s.init(problem, np.random.default_rng(2))
    state = s.step(problem, s.step(problem, state))
    back = loads(dumps(state))
    assert back.inner is None  # rebuilt on the next step
    assert type(back.optimizer) is torch.optim.Adam
    assert back.optimizer.param_groups[0]["params"][0] is back.params.b
    assert back.optimizer.param_groups[0]["lr"] == 0.03
    assert _same(state.optimizer.state_dict(), back.optimizer.state_dict())
    resumed = s.step(problem, back)
    assert resumed.inner is not None
    assert resumed.step == 3
