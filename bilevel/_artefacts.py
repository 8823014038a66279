"""One load verb for every designed artefact: ``bilevel.load(path)``.

Every designer saves what it designed with ``designer.save(path)``; :func:`load` reads any of
those files back without unpickling, by what the path holds:

* ``.json`` or ``.npz`` — an affine maximizer mechanism (:class:`~bilevel.AMA`, written by
  ``AMADesigner.save`` or ``AMA.save``);
* a directory with ``result.json`` — a Stackelberg design
  (:class:`~bilevel.stackelberg.StackelbergResult`, written by ``StackelbergDesigner.save``);
* any other file — a learned sequential price mechanism (a weights-only torch file written by
  ``SPMDesigner.save``), returned as a fitted :class:`~bilevel.spm.SPMDesigner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load"]


def load(path: str | Path) -> Any:
    """Read a designed artefact saved by any designer's ``save``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    AMA or StackelbergResult or SPMDesigner

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    ValueError
        If the file is not a saved artefact of this library.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"expected a saved mechanism at {str(p)!r}, got no such path")
    if p.is_dir():
        if not (p / "result.json").is_file():
            raise ValueError(
                f"expected a saved design (a file, or a directory with result.json), got the "
                f"directory {str(p)!r}"
            )
        from bilevel.stackelberg import load_stackelberg

        return load_stackelberg(p)
    if p.suffix in (".json", ".npz"):
        from bilevel._mechanism import load_mechanism

        return load_mechanism(p)
    from bilevel.spm import SPMDesigner

    return SPMDesigner.load(p)
