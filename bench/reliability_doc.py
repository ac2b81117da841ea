"""Regenerate docs/reliability.md by running the reliability suite.

Runs ``pytest tests/test_reliability_*.py`` (plus ``--slow`` when asked) with
``JINA_MIGRATE_RELIABILITY_DOC`` set, so the suite's plugin (tests/reliability_plugin.py) writes
the table from the rows its tests recorded, each stamped pass/FAIL by pytest. Rows of tests that
did not run this time (the slow ones in a fast run) are kept from docs/reliability.json with their
date. Exit code: pytest's.

Usage: python bench/reliability_doc.py [--slow] [extra pytest args]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    args = sys.argv[1:]
    env = dict(os.environ, JINA_MIGRATE_RELIABILITY_DOC=str(REPO / "docs" / "reliability.md"), HF_HUB_OFFLINE="1")
    tests = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_reliability_*.py"))
    # other modules that record rows: user mistakes, settings, output state, databases
    tests += [f"tests/{name}.py" for name in ("test_user_mistakes", "test_settings_property", "test_inputs_and_state",
                                              "test_db_e2e", "test_db_postgres", "test_dbswitch_items",
                                              "test_dbids_matrix", "test_dbswitch_readme")]
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--durations=15", *tests, *args]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    print(f"wrote {REPO / 'docs' / 'reliability.md'} (pytest exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
