"""Shared pytest fixtures (keep minimal: other test files define their own helpers)."""
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    """The repository root (cwd for the command-line tests)."""
    return REPO_ROOT
