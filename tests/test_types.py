"""`migrate/` type-checks under pyproject's `[tool.mypy]` settings (check_untyped_defs, no implicit Optional,
unused ignores are errors). Runs mypy exactly as a developer would, from the repository root."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_mypy_passes_on_the_package():
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "No module named mypy" not in out, "mypy is not installed: pip install -e '.[test]'"
    assert proc.returncode == 0, out[-8000:]
    assert "Success: no issues found" in proc.stdout, out[-2000:]
