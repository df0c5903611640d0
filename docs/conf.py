"""Sphinx configuration for the trio_lifespan docs (built with -nW in CI)."""

import trio_lifespan

project = "trio_lifespan"
author = "the trio_lifespan developers"
release = trio_lifespan.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
# Types are described in the text; signatures stay readable and every
# reference in them resolves without a network (no intersphinx here).
autodoc_typehints = "none"
exclude_patterns = ["_build", "examples"]
nitpicky = True
# Python's own names: no inventory is fetched, so they are not links.
nitpick_ignore = [
    ("py:exc", name)
    for name in (
        "TimeoutError",
        "ValueError",
        "TypeError",
        "RuntimeError",
        "Exception",
        "ExceptionGroup",
        "BaseExceptionGroup",
        "KeyboardInterrupt",
    )
] + [("py:class", "TimeoutError"), ("py:class", "Exception")]
html_theme = "alabaster"
