"""A data-only format for search states: never pickle, never import a class named by a file.

A serialised state is an ``.npz`` archive written by numpy: one member ``tree`` holds a JSON
document (``format``, ``version`` and the value as a tree of tagged nodes) and the other members
hold the arrays the tree refers to. :func:`loads` reads it with ``allow_pickle=False`` and
rebuilds only the types below, so loading a checkpoint — even one planted in a copied run
directory — can never execute code:

* ``None``, ``bool``, ``int``, ``float`` (nan and inf included), ``str``, ``bytes``;
* ``list``, ``tuple`` and ``dict`` (keys ``str`` or ``int``, kept distinct);
* numpy arrays and scalars (dtype kept; no object dtypes);
* torch tensors (dtype, device and ``requires_grad`` kept);
* :class:`numpy.random.Generator` over numpy's own bit generators (state and seed sequence,
  so ``spawn`` continues exactly);
* :class:`bilevel.AMA` (through ``to_dict`` / ``from_dict``);
* dataclasses of an explicit allow-list: the library's own search states and searcher
  configurations, each registered under a fixed name with :func:`serializable` or
  :func:`register`. A name read from a file is only ever looked up in that table.

Everything else makes :func:`dumps` raise ``TypeError`` naming the type; anything that is not
this format (a pickle, garbage, a truncated archive, an unknown class, a newer version) makes
:func:`loads` raise a one-line ``ValueError``.

Examples
--------
>>> import numpy as np
>>> state = {"step": 3, "b": np.arange(3.0), "rng": np.random.default_rng(0)}
>>> back = loads(dumps(state))
>>> back["step"], back["b"].tolist(), back["rng"].random() == np.random.default_rng(0).random()
(3, [0.0, 1.0, 2.0], True)
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from bilevel._mechanism import AMA

__all__ = ["FORMAT", "VERSION", "dumps", "loads", "register", "serializable"]

FORMAT = "bilevel.search-state"
VERSION = 1
_EXPECTED = f"a bilevel search state ({FORMAT!r} version {VERSION}, an .npz archive)"
_TREE = "tree"

_C = TypeVar("_C", bound=type)
Encoder = Callable[[Any], dict[str, Any]]
Decoder = Callable[[dict[str, Any]], Any]

# numpy's own bit generators: the only ones a Generator is rebuilt over.
_BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "MT19937": np.random.MT19937,
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}

# torch dtypes kept through a numpy array of the same bits (bfloat16 as int16).
_TORCH_DTYPES: dict[str, torch.dtype] = {
    str(dt): dt
    for dt in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
        torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
        torch.bool,
    )
}


@dataclasses.dataclass(frozen=True)
class _Entry:
    cls: type
    fields: tuple[str, ...]
    encode: Encoder | None
    decode: Decoder | None


_BY_NAME: dict[str, _Entry] = {}
_NAME_OF: dict[type, str] = {}


def register(
    cls: type,
    name: str,
    *,
    exclude: tuple[str, ...] = (),
    encode: Encoder | None = None,
    decode: Decoder | None = None,
) -> None:
    """Allow the dataclass ``cls`` in serialised states under the fixed ``name``.

    Parameters
    ----------
    cls : type
        A dataclass.
    name : str
        Its name in the format (never used to import anything).
    exclude : tuple of str
        Fields that are not data (e.g. an executor): left out when saving and given their
        default when loading, so they must have one.
    encode, decode : callable, optional
        Custom conversion ``obj -> {field: value}`` and back (both or neither); by default the
        dataclass's init fields (minus ``exclude``) are saved and ``cls(**fields)`` rebuilds it.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass, got {cls!r}")
    if (encode is None) != (decode is None):
        raise ValueError(f"expected both encode and decode for {name!r}, or neither")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for f_name in exclude:
        f = known.get(f_name)
        if f is None:
            raise ValueError(f"{cls.__qualname__} has no field {f_name!r} to exclude")
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default:
            raise ValueError(f"excluded field {cls.__qualname__}.{f_name} needs a default")
    fields = tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in exclude)
    old = _BY_NAME.get(name)
    if old is not None and old.cls is not cls:
        raise ValueError(f"the name {name!r} is already registered for {old.cls.__qualname__}")
    _BY_NAME[name] = _Entry(cls, fields, encode, decode)
    _NAME_OF[cls] = name


def serializable(
    name: str,
    *,
    exclude: tuple[str, ...] = (),
    encode: Encoder | None = None,
    decode: Decoder | None = None,
) -> Callable[[_C], _C]:
    """Class decorator form of :func:`register`."""

    def deco(cls: _C) -> _C:
        register(cls, name, exclude=exclude, encode=encode, decode=decode)
        return cls

    return deco


# ---------------------------------------------------------------------- writing


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray[Any, Any]] = {}

    def array(self, a: np.ndarray[Any, Any]) -> str:
        if a.dtype.hasobject:
            raise TypeError(f"cannot serialise a numpy array of dtype {a.dtype} (objects)")
        ref = f"a{len(self.arrays)}"
        self.arrays[ref] = a
        return ref

    def node(self, obj: Any) -> Any:
        t = type(obj)
        if obj is None or t in (bool, int, str):
            return obj
        if t is float:
            return obj
        if t is list:
            return [self.node(v) for v in obj]
        if t is tuple:
            return {"$": "tuple", "items": [self.node(v) for v in obj]}
        if t is dict:
            items = []
            for k, v in obj.items():
                if type(k) not in (str, int):
                    raise TypeError(
                        f"cannot serialise a dict key of type {_type_name(type(k))} "
                        "(only str and int keys)"
                    )
                items.append([k, self.node(v)])
            return {"$": "dict", "items": items}
        if t is bytes:
            return {"$": "bytes", "ref": self.array(np.frombuffer(obj, dtype=np.uint8))}
        if t is np.ndarray:
            return {"$": "ndarray", "ref": self.array(obj)}
        if isinstance(obj, np.generic):
            return {"$": "npscalar", "ref": self.array(np.asarray(obj))}
        if isinstance(obj, torch.Tensor):
            return self.tensor(obj)
        if t is np.random.Generator:
            return self.generator(obj)
        if t is AMA:
            return {"$": "ama", "data": self.node(obj.to_dict())}
        name = _NAME_OF.get(t)
        if name is not None:
            entry = _BY_NAME[name]
            values = (
                entry.encode(obj) if entry.encode is not None
                else {f: getattr(obj, f) for f in entry.fields}
            )
            return {"$": "dataclass", "class": name,
                    "fields": {k: self.node(v) for k, v in values.items()}}
        raise TypeError(
            f"cannot serialise an object of type {_type_name(t)} in a search state "
            "(not a supported data type or a registered state class)"
        )

    def tensor(self, t: torch.Tensor) -> dict[str, Any]:
        if type(t) is not torch.Tensor or t.layout != torch.strided or t.is_quantized:
            raise TypeError(f"cannot serialise a {_type_name(type(t))} of layout {t.layout}")
        dtype = str(t.dtype)
        if dtype not in _TORCH_DTYPES:
            raise TypeError(f"cannot serialise a torch tensor of dtype {dtype}")
        data = t.detach().cpu().resolve_conj().resolve_neg().contiguous()
        if t.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        return {"$": "tensor", "ref": self.array(data.numpy()), "dtype": dtype,
                "device": str(t.device), "requires_grad": bool(t.requires_grad)}

    def generator(self, g: np.random.Generator) -> dict[str, Any]:
        bg = g.bit_generator
        name = type(bg).__name__
        if _BIT_GENERATORS.get(name) is not type(bg):
            raise TypeError(f"cannot serialise a Generator over {_type_name(type(bg))}")
        ss = getattr(bg, "seed_seq", None)
        if type(ss) is not np.random.SeedSequence:
            raise TypeError(f"cannot serialise a Generator whose seed sequence is {ss!r}")
        seed_seq = {"entropy": ss.entropy, "spawn_key": tuple(ss.spawn_key),
                    "pool_size": ss.pool_size, "n_children_spawned": ss.n_children_spawned}
        return {"$": "generator", "bit_generator": name, "state": self.node(bg.state),
                "seed_seq": self.node(seed_seq)}


def dumps(obj: Any) -> bytes:
    """Serialise a search state (see the module docstring for the supported types).

    Raises
    ------
    TypeError
        If ``obj`` contains a value of an unsupported type (named in the message).
    """
    w = _Writer()
    root = w.node(obj)
    tree = json.dumps({"format": FORMAT, "version": VERSION, "root": root},
                      allow_nan=True, separators=(",", ":"))
    buf = io.BytesIO()
    # Object arrays were refused above, so nothing in the archive is pickled.
    members: dict[str, Any] = {_TREE: np.frombuffer(tree.encode(), dtype=np.uint8), **w.arrays}
    np.savez(buf, **members)
    return buf.getvalue()


# ---------------------------------------------------------------------- reading


class _StateError(Exception):
    """A well-formed archive whose content is not a valid state (becomes ValueError)."""


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        self.arrays = arrays

    def array(self, ref: Any) -> np.ndarray[Any, Any]:
        if type(ref) is not str or ref not in self.arrays:
            raise _StateError(f"a reference to a missing array {ref!r}")
        return np.array(self.arrays[ref], copy=True, order="K")  # writable, own memory

    def node(self, n: Any) -> Any:
        t = type(n)
        if n is None or t in (bool, int, float, str):
            return n
        if t is list:
            return [self.node(v) for v in n]
        if t is not dict:
            raise _StateError(f"a node of JSON type {t.__name__}")
        tag = n.get("$")
        if tag == "tuple":
            return tuple(self.node(v) for v in _list(n, "items"))
        if tag == "dict":
            out: dict[Any, Any] = {}
            for item in _list(n, "items"):
                if type(item) is not list or len(item) != 2 or type(item[0]) not in (str, int):
                    raise _StateError("a dict entry that is not a [str or int key, value] pair")
                if item[0] in out:
                    raise _StateError(f"a duplicate dict key {item[0]!r}")
                out[item[0]] = self.node(item[1])
            return out
        if tag == "bytes":
            a = self.array(n.get("ref"))
            if a.dtype != np.uint8 or a.ndim != 1:
                raise _StateError("bytes not stored as a 1-d uint8 array")
            return a.tobytes()
        if tag == "ndarray":
            return self.array(n.get("ref"))
        if tag == "npscalar":
            a = self.array(n.get("ref"))
            if a.ndim != 0:
                raise _StateError("a numpy scalar stored with a shape")
            return a[()]
        if tag == "tensor":
            return self.tensor(n)
        if tag == "generator":
            return self.generator(n)
        if tag == "ama":
            data = self.node(n.get("data"))
            if type(data) is not dict:
                raise _StateError("a mechanism that is not a dict")
            return AMA.from_dict(data)
        if tag == "dataclass":
            return self.dataclass(n)
        raise _StateError(f"an unknown node tag {tag!r}")

    def tensor(self, n: dict[str, Any]) -> torch.Tensor:
        dtype = _TORCH_DTYPES.get(n.get("dtype"))  # type: ignore[arg-type]
        device, grad = n.get("device"), n.get("requires_grad")
        if dtype is None or type(device) is not str or type(grad) is not bool:
            raise _StateError("a tensor without a known dtype, a device and requires_grad")
        a = self.array(n.get("ref"))
        t = torch.from_numpy(a)
        if dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        if t.dtype != dtype:
            raise _StateError(f"a tensor of dtype {dtype} stored as {a.dtype}")
        return t.to(torch.device(device)).requires_grad_(grad)

    def generator(self, n: dict[str, Any]) -> np.random.Generator:
        cls = _BIT_GENERATORS.get(n.get("bit_generator"))  # type: ignore[arg-type]
        if cls is None:
            raise _StateError(f"an unknown bit generator {n.get('bit_generator')!r}")
        ss = self.node(n.get("seed_seq"))
        state = self.node(n.get("state"))
        if type(ss) is not dict or type(state) is not dict:
            raise _StateError("a generator without its state and seed sequence")
        entropy = ss.get("entropy")
        if not (type(entropy) is int or (type(entropy) is list
                                         and all(type(e) is int for e in entropy))
                or (type(entropy) is np.ndarray and entropy.dtype.kind in "iu")):
            raise _StateError("a seed sequence whose entropy is not integers")
        bg = cls(np.random.SeedSequence(
            entropy, spawn_key=ss.get("spawn_key", ()), pool_size=ss.get("pool_size", 4),
            n_children_spawned=ss.get("n_children_spawned", 0),
        ))
        bg.state = state
        return np.random.Generator(bg)

    def dataclass(self, n: dict[str, Any]) -> Any:
        name = n.get("class")
        entry = _BY_NAME.get(name) if type(name) is str else None
        if entry is None:
            raise _StateError(f"an unknown class {name!r} (not a registered state class)")
        raw = n.get("fields")
        if type(raw) is not dict:
            raise _StateError(f"a {name} without fields")
        fields = {k: self.node(v) for k, v in raw.items()}
        if entry.decode is not None:
            return entry.decode(fields)
        if set(fields) != set(entry.fields):
            raise _StateError(
                f"a {name} with fields {sorted(fields)}, expected {list(entry.fields)}"
            )
        return entry.cls(**fields)


def _list(n: dict[str, Any], key: str) -> list[Any]:
    v = n.get(key)
    if type(v) is not list:
        raise _StateError(f"a {n.get('$')} node without a list of {key}")
    return v


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Rebuild a value written by :func:`dumps`; never executes anything from ``data``.

    Raises
    ------
    ValueError
        If ``data`` is not this format (one line saying what was expected and what was found).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {_type_name(type(data))}")
    raw = bytes(data)
    if raw[:1] == b"\x80":
        raise ValueError(
            f"expected {_EXPECTED}, got a pickle (written by an older version of bilevel, or "
            "planted): pickles are never loaded"
        )
    if not raw.startswith(b"PK\x03\x04"):
        raise ValueError(
            f"expected {_EXPECTED}, got {len(raw)} bytes of another format (never loaded)"
        )
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile) or _TREE not in z.files:
                raise _StateError(f"an archive without {_TREE!r}")
            arrays: dict[str, np.ndarray[Any, Any]] = {}
            for name in z.files:
                a = z[name]
                if not isinstance(a, np.ndarray):
                    raise _StateError(f"an archive member {name!r} that is not an array")
                arrays[name] = a
        tree = arrays.pop(_TREE)
        if tree.dtype != np.uint8 or tree.ndim != 1:
            raise _StateError(f"a {_TREE!r} member that is not JSON bytes")
        doc = json.loads(tree.tobytes().decode("utf-8"))
        if type(doc) is not dict or doc.get("format") != FORMAT:
            got = doc.get("format") if type(doc) is dict else type(doc).__name__
            raise _StateError(f"an archive of format {got!r}")
        version = doc.get("version")
        if type(version) is not int or version != VERSION:
            which = "a newer" if type(version) is int and version > VERSION else "another"
            raise _StateError(f"version {version!r}, written by {which} version of bilevel")
        return _Reader(arrays).node(doc.get("root"))
    except _StateError as e:
        raise ValueError(f"expected {_EXPECTED}, got {_one_line(str(e))}") from None
    except (Exception, RecursionError) as e:
        raise ValueError(
            f"expected {_EXPECTED}, got an unreadable or invalid archive "
            f"({type(e).__name__}: {_one_line(str(e))})"
        ) from None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def _type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__
