"""Where the repository is, so notebooks and scripts find committed results from any working directory."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repo_path(path: str) -> str:
    """`path` relative to the repository root (an absolute path is returned as it is)."""
    return os.path.join(ROOT, path)
