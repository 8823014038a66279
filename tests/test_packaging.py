"""One installed name: the layers import each other as documented, and the wheel holds only
``bilevel``.

* The import graph, read from the source (every ``import`` statement, at module level or
  inside functions, of every module and stub of ``models/``, ``solvers/`` and ``bilevel/``):
  ``bilevel.models`` imports nothing of ours but itself; ``bilevel.solvers`` only
  ``bilevel.models`` and itself; the rest of ``bilevel`` reaches the two lower layers through
  their public names only (no ``_private`` part after ``bilevel.models`` / ``bilevel.solvers``);
  nothing imports the top-level ``models`` or ``solvers``. Importing the whole library leaves
  ``models`` and ``solvers`` out of ``sys.modules``.
* The wheel, built from a copy of the repository without network and unpacked into a fresh
  virtual environment: ``import models`` and ``import solvers`` fail, ``bilevel.models`` and
  ``bilevel.solvers`` come from the wheel, a user project with its own ``models`` package keeps
  it, and the stubs, ``py.typed`` markers and the paper's tables are in the wheel.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests import ROOT

LAYERS = {"models": "bilevel.models", "solvers": "bilevel.solvers", "bilevel": "bilevel"}
LOWER = ("bilevel.models", "bilevel.solvers")


def _source_files() -> list[tuple[str, Path]]:
    """(dotted module name, path) of every .py and .pyi of the three real source folders."""
    out = []
    for folder, package in LAYERS.items():
        base = ROOT / folder
        for path in sorted([*base.rglob("*.py"), *base.rglob("*.pyi")]):
            rel = path.relative_to(base)
            if folder == "bilevel" and rel.parts[0] in ("models", "solvers"):
                continue  # the symlinks to the root folders
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join([package, *parts])
            out.append((name + ("" if not is_package else ".__init__"), path))
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported dotted path) of every import in ``path``, relative ones resolved.

    ``from a.b import c`` gives ``a.b.c`` (``c`` may be a submodule or a name; either way it
    is what the module reaches into).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.rsplit(".", 1)[0]  # the package the module lives in
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            found += [(node.lineno, f"{prefix}.{alias.name}" if alias.name != "*" else prefix)
                      for alias in node.names]
    return found


def _ours(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("bilevel", "models", "solvers")


def _private_part(name: str, layer: str) -> bool:
    """Whether ``name`` reaches a ``_private`` part of ``layer`` (``bilevel.models.typing`` is
    public)."""
    rest = name[len(layer) + 1:].split(".") if name.startswith(layer + ".") else []
    return any(p.startswith("_") and not p.startswith("__") for p in rest)


def layering_violations() -> list[str]:
    """Every import that breaks the layering, as ``"path:line: module imports name (rule)"``."""
    bad = []
    for module, path in _source_files():
        where = path.relative_to(ROOT).as_posix()
        for line, name in _imports(module, path):
            if not _ours(name):
                continue
            top = name.split(".")[0]
            if top in ("models", "solvers"):
                bad.append(f"{where}:{line}: imports the top-level {name!r} (use bilevel.{name})")
            elif module.startswith("bilevel.models"):
                if not name.startswith("bilevel.models"):
                    bad.append(f"{where}:{line}: bilevel.models imports {name!r}")
            elif module.startswith("bilevel.solvers"):
                if not name.startswith(LOWER):
                    bad.append(f"{where}:{line}: bilevel.solvers imports {name!r}")
            else:
                for layer in LOWER:
                    if _private_part(name, layer):
                        bad.append(f"{where}:{line}: {module} imports the private {name!r} "
                                   f"(use a public name of {layer})")
    return bad


def test_the_source_folders_are_parsed() -> None:
    names = {m for m, _ in _source_files()}
    assert {"bilevel.models._env", "bilevel.solvers.spm._exact", "bilevel.search._cma",
            "bilevel.solvers.__init__", "bilevel.__init__"} <= names
    assert not any(n.startswith(("bilevel.bilevel", "bilevel.models.models")) for n in names)


def test_the_import_graph_respects_the_layers() -> None:
    assert layering_violations() == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("from . import _dp\n"
                    "def f():\n"
                    "    import models._env\n"
                    "    from bilevel.solvers._lp import solve_lp\n"
                    "    from ..models import typing\n")
    assert _imports("bilevel.solvers.spm._x", path) == [
        (1, "bilevel.solvers.spm._dp"), (3, "models._env"),
        (4, "bilevel.solvers._lp.solve_lp"), (5, "bilevel.solvers.models.typing"),
    ]
    assert _private_part("bilevel.solvers._lp.solve_lp", "bilevel.solvers")
    assert not _private_part("bilevel.models.typing.FloatArray", "bilevel.models")
    assert not _private_part("bilevel.solvers.spm.SPMGymEnv", "bilevel.solvers")


def _run(code: str, cwd: Path, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_importing_the_whole_library_loads_no_top_level_models_or_solvers(
    tmp_path: Path,
) -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import bilevel\n"
        "names = [m.name for m in pkgutil.walk_packages(bilevel.__path__, 'bilevel.')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "print(json.dumps({'n': len(names), 'models': 'models' in sys.modules,\n"
        "                  'solvers': 'solvers' in sys.modules}))\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n"] > 50  # every family, through the bilevel.models / bilevel.solvers names
    assert out == {"n": out["n"], "models": False, "solvers": False}


# ---------------------------------------------------------------------- the wheel


def _copy_repository(dest: Path) -> None:
    """pyproject.toml, README.md, LICENSE and the three source folders, without symlinks."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("models", "solvers"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=skip)

    def skip_links(d: str, names: list[str]) -> set[str]:
        return set(skip(d, names)) | {n for n in names if os.path.islink(os.path.join(d, n))}

    shutil.copytree(ROOT / "bilevel", dest / "bilevel", ignore=skip_links)
    assert not (dest / "bilevel" / "models").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the repository, without network."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    _copy_repository(src)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c",
         "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"],
        cwd=src, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = proc.stdout.strip().splitlines()[-1]
    return src / "dist" / name


@pytest.fixture(scope="module")
def fresh_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no pip) with the wheel unpacked, and the main venv's packages on a .pth."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(_run("import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     venv, str(python)).stdout.strip())
    assert site.is_dir() and site.is_relative_to(venv)
    main_site = sysconfig.get_paths()["purelib"]
    # A directory listed in a .pth is added to sys.path, but its own .pth files (here the
    # editable install's import hook) are not processed: checked by the first wheel test.
    (site / "main_venv.pth").write_text(main_site + "\n")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return python


@pytest.mark.integration
def test_the_wheel_holds_stubs_markers_and_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {"bilevel/py.typed", "bilevel/models/py.typed", "bilevel/solvers/py.typed",
                "bilevel/__init__.pyi", "bilevel/solvers/__init__.pyi",
                "bilevel/reproduce/data/paper_tables.csv"}
    # ... and every stub and marker of the source, under its installed name
    for folder, package in LAYERS.items():
        for path in [*(ROOT / folder).rglob("*.pyi"), *(ROOT / folder).rglob("py.typed")]:
            rel = path.relative_to(ROOT / folder)
            if folder == "bilevel" and rel.parts[0] in ("models", "solvers"):
                continue
            expected.add("/".join([*package.split("."), *rel.parts]))
    assert expected <= names, sorted(expected - names)
    assert not any(n.split("/")[0] in ("models", "solvers") for n in names)
    assert {n.split("/")[0] for n in names} == {"bilevel", wheel.name.split("-")[0] + "-"
                                                + wheel.name.split("-")[1] + ".dist-info"}


@pytest.mark.integration
def test_the_wheel_installs_one_name(fresh_python: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, sys\n"
        "out = {'hooks': [m for m in sys.modules if m.startswith('__editable__')],\n"
        "       'finders': [type(f).__name__ for f in sys.meta_path\n"
        "                   if 'ditable' in type(f).__name__]}\n"
        "for top in ('models', 'solvers'):\n"
        "    try:\n"
        "        __import__(top)\n"
        "        out[top] = 'imported'\n"
        "    except ModuleNotFoundError as e:\n"
        "        out[top] = e.name\n"
        "import bilevel.models, bilevel.solvers\n"
        "out['files'] = [bilevel.__file__, bilevel.models.__file__, bilevel.solvers.__file__]\n"
        "out['prefix'] = sys.prefix\n"
        "print(json.dumps(out))\n"
    )
    proc = _run(code, tmp_path, str(fresh_python))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["hooks"] == [] and out["finders"] == []  # the main venv's .pth files did not run
    assert out["models"] == "models" and out["solvers"] == "solvers"  # not found
    venv = Path(out["prefix"]).resolve()
    assert venv == fresh_python.parent.parent.resolve()
    for f in out["files"]:
        assert Path(f).resolve().is_relative_to(venv), f


@pytest.mark.integration
def test_a_user_models_package_is_not_shadowed(fresh_python: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "__init__.py").write_text("USER = 1\n")
    code = (
        "import models\n"
        "import bilevel\n"
        "from bilevel import make_env\n"
        "env = make_env('sales', n_agents=2, n_items=1)\n"
        "import bilevel.models\n"
        "print(models.USER, env.mdp.shape, models.__file__, bilevel.models.__file__)\n"
    )
    proc = _run(code, project, str(fresh_python))
    assert proc.returncode == 0, proc.stderr[-3000:]
    user, shape_s, shape_a, user_file, ours = proc.stdout.split()
    assert user == "1" and (shape_s, shape_a) == ("(1,", "3)")  # sales 2 x 1: S = 1, A = 3
    assert Path(user_file).resolve().is_relative_to(project.resolve())
    assert Path(ours).resolve().is_relative_to(fresh_python.parent.parent.resolve())


def test_pyproject_lists_every_package() -> None:
    # the wheel's packages are listed in pyproject.toml; a new subpackage must be added there
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {"bilevel"}
    for top, name in (("bilevel", "bilevel"), ("models", "bilevel.models"),
                      ("solvers", "bilevel.solvers")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            if top == "bilevel" and rel.parts[:1] in (("models",), ("solvers",)):
                continue  # the symlinks
            found.add(".".join((name, *rel.parts)))
    assert listed == found
