"""Development tooling of medserve: run from a checkout (``python -m devtools``), never shipped
in the product wheel and never imported by the product packages (``tests/test_boundaries.py``).
See ``devtools/__main__.py`` for the commands and ``docs/architecture.md`` for the split.
"""
