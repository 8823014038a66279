"""Strict JSON for every file and line the library writes: non-finite floats become ``null``.

Python's :func:`json.dumps` writes ``NaN``/``Infinity`` by default, which is not JSON (other
readers refuse it). :func:`to_json` replaces every non-finite float (Python or numpy, at any
depth of dicts, lists and tuples) by ``None`` and then serialises with ``allow_nan=False``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "to_json"]


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (numpy scalars and arrays
    become Python numbers and lists); other values are returned unchanged."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return finite_or_none(obj.item())
    if isinstance(obj, np.ndarray):
        return finite_or_none(obj.tolist())
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of ``obj`` with non-finite floats as ``null`` and ``allow_nan=False``.

    Parameters
    ----------
    obj : Any
        A JSON-serialisable value (numpy scalars and arrays are accepted).
    **kwargs
        Passed to :func:`json.dumps` (``indent``, ``sort_keys``, ``default``...), except
        ``allow_nan``, which is always False.

    Examples
    --------
    >>> to_json({"se": float("nan"), "xs": [1.0, float("inf")]})
    '{"se": null, "xs": [1.0, null]}'
    """
    kwargs.pop("allow_nan", None)
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
