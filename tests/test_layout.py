"""Tests mirror the source: the test of ``a/b/_c.py`` is ``tests/a/b/test_c.py``.

Every ``tests/**/test_X.py`` lies in the folder that mirrors a source folder (``tests/models``
for ``models/``, ``tests/solvers`` for ``solvers/``, ``tests/bilevel`` for ``bilevel/``, and so
on down) and names a module of it: ``_X.py`` (or a public ``X.py``) or a package ``X/``. The
only exceptions are the cross-cutting suites of ``ALLOWLIST``, which test a property of the
whole library. ``tests/bilevel/models`` and ``tests/bilevel/solvers`` are not mirrors:
``bilevel/models`` and ``bilevel/solvers`` are symlinks to the root folders, whose tests live in
``tests/models`` and ``tests/solvers``. Every folder of tests is a package (``__init__.py``).
"""

from __future__ import annotations

from pathlib import Path

from tests import ROOT

SOURCE_ROOTS = ("models", "solvers", "bilevel")
SYMLINKED = {("bilevel", "models"), ("bilevel", "solvers")}

ALLOWLIST = {
    # cross-cutting suites: a property of the whole library, not of one module
    "test_bad_input.py": "bad input fails clearly, across the layers",
    "test_bad_input_table.py": "the table of bad inputs, API and CLI",
    "test_reproducibility.py": "results depend on the seed alone",
    "test_integrity.py": "results are tied to what they depend on",
    "test_no_code_execution.py": "no file the library reads runs code",
    "test_docs_and_benchmarks.py": "the README example and the benchmark scripts run",
    "test_architecture.py": "docs/architecture.md names what exists",
    "test_notebooks.py": "the notebooks run",
    "test_doctests.py": "every docstring example runs",
    "test_startup.py": "importing the package is fast",
    "test_packaging.py": "the import graph and the built wheel",
    "test_layout.py": "this file",
    "solvers/test_contract.py": "the contract of every inner solver",
    "bilevel/test_contract.py": "the contract of every designer",
}


def misplaced(tests: Path, root: Path, allow: dict[str, str] = ALLOWLIST) -> list[str]:
    """Test modules under ``tests`` that mirror no source module under ``root``.

    Parameters
    ----------
    tests : Path
        The folder of tests (``tests/``).
    root : Path
        The repository root, holding the folders of ``SOURCE_ROOTS``.
    allow : dict of str to str
        Paths relative to ``tests`` that need not mirror a module (with the reason).

    Returns
    -------
    list of str
        One line per misplaced test, ``"path: reason"``, sorted.
    """
    bad = []
    for path in sorted(tests.rglob("test_*.py")):
        rel = path.relative_to(tests)
        if rel.as_posix() in allow:
            continue
        folder, name = rel.parts[:-1], path.stem.removeprefix("test_")
        if not folder or folder[0] not in SOURCE_ROOTS:
            bad.append(f"{rel.as_posix()}: not under tests/{{{','.join(SOURCE_ROOTS)}}}/ "
                       "and not an allowlisted cross-cutting suite")
            continue
        if tuple(folder[:2]) in SYMLINKED:
            bad.append(f"{rel.as_posix()}: bilevel/{folder[1]} is a symlink; "
                       f"its tests go in tests/{folder[1]}/")
            continue
        source = root.joinpath(*folder)
        candidates = (source / f"_{name}.py", source / f"{name}.py", source / name / "__init__.py")
        if not any(c.is_file() for c in candidates):
            bad.append(f"{rel.as_posix()}: no module {'/'.join(folder)}/_{name}.py "
                       f"(or {name}.py, or package {name}/)")
    return bad


def missing_init(tests: Path) -> list[str]:
    """Folders of tests without ``__init__.py`` (the suite uses package-style modules)."""
    folders = {p.parent for p in tests.rglob("*.py") if "__pycache__" not in p.parts}
    return sorted(f.relative_to(tests.parent).as_posix() for f in folders
                  if not (f / "__init__.py").is_file())


def test_every_test_mirrors_a_source_module() -> None:
    assert misplaced(ROOT / "tests", ROOT) == []


def test_every_test_folder_is_a_package() -> None:
    assert missing_init(ROOT / "tests") == []


def test_the_allowlist_names_existing_suites_only() -> None:
    missing = [rel for rel in ALLOWLIST if not (ROOT / "tests" / rel).is_file()]
    # bilevel/test_contract.py is written alongside this file; allow it to arrive later
    assert [m for m in missing if m != "bilevel/test_contract.py"] == []


def test_a_misplaced_test_is_found(tmp_path: Path) -> None:
    for src in ("models/_env.py", "solvers/spm/_exact.py", "bilevel/search/_cma.py",
                "bilevel/reproduce/__init__.py", "models/typing.py"):
        (tmp_path / src).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / src).write_text("")
    (tmp_path / "bilevel" / "models").mkdir()
    good = ["models/test_env.py", "solvers/spm/test_exact.py", "bilevel/search/test_cma.py",
            "bilevel/test_reproduce.py", "models/test_typing.py", "test_doctests.py"]
    wrong = {
        "spm/test_exact.py": "not under tests/",
        "solvers/test_exact.py": "no module solvers/_exact.py",
        "bilevel/test_cma.py": "no module bilevel/_cma.py",
        "bilevel/models/test_env.py": "bilevel/models is a symlink",
        "test_env.py": "not an allowlisted cross-cutting suite",
    }
    tests = tmp_path / "tests"
    for rel in [*good, *wrong]:
        (tests / rel).parent.mkdir(parents=True, exist_ok=True)
        (tests / rel).write_text("")
    found = misplaced(tests, tmp_path, allow={"test_doctests.py": ""})
    assert len(found) == len(wrong), found
    for line, (rel, reason) in zip(found, sorted(wrong.items()), strict=True):
        assert line.startswith(f"{rel}: ") and reason in line, (line, rel, reason)
    assert missing_init(tests) == sorted(
        {"tests", "tests/models", "tests/solvers", "tests/solvers/spm", "tests/bilevel",
         "tests/bilevel/search", "tests/bilevel/models", "tests/spm"}
    )
