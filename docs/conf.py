"""Sphinx configuration of the bilevel documentation.

Built by ``make docs`` (and so by ``make test``) with warnings as errors::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The API pages document the public packages from their docstrings (numpy style, read by
``sphinx.ext.napoleon``); the markdown pages (results, audits, architecture, references and the
tutorials) are read as they are by ``myst_parser``.
"""

from __future__ import annotations

import bilevel

project = "bilevel"
author = "bilevel contributors"
copyright = "2026, bilevel contributors"  # noqa: A001 - the name Sphinx reads
release = bilevel.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# reproduce-full/ holds the committed reports of `bilevel reproduce --full`: data, not pages
# (docs/results.md discusses them).
exclude_patterns = ["_build", "reproduce-full"]

# numpy-style docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_preprocess_types = False

# The packages load their names lazily (lazy_loader stubs); autodoc's getattr triggers the
# import, and __all__ decides what each page documents.
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autosummary_generate = False

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"bilevel {release}"

# Type descriptions such as "array of shape (n, S, A)" are cross-referenced word by word; words
# that name several documented attributes ("n", "shape") give "more than one target found"
# (ref.python). Those are the only references Sphinx cannot resolve unambiguously, and nitpicky
# mode stays off, so the category is silenced rather than every docstring reworded.
suppress_warnings = ["ref.python"]
