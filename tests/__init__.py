"""The test suite: package-style modules laid out like the source (see tests/test_layout.py)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (where pyproject.toml, benchmarks/ and examples/ are)."""
