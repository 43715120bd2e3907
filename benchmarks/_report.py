"""What every benchmark script writes beside its numbers (standard library only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def fmt(value: float | None) -> str:
    """Seconds to three significant digits (whole seconds from 1,000 on); blank for None."""
    if value is None:
        return ""
    return f"{value:.0f}" if value >= 1000 else f"{value:.3g}"


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository root (``../x`` outside it), as reports record
    paths: the same on every machine that has the same layout."""
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def jaxal_commit() -> str | None:
    """The short commit of this checkout, "+dirty" with uncommitted changes to tracked
    files; None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "diff", "--quiet", "HEAD", "--"], check=False
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")
