"""What `pip install jina-migrate` ships: the bundled sample (so `jina-migrate demo` works from any
directory) and no test-only code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_the_wheel_ships_the_sample_and_no_test_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("jina_migrate-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("docs.jsonl", "old_index.faiss", "id_map.csv", "old_vectors.parquet", "queries.jsonl", "qrels.tsv"):
        assert f"migrate/data/sample/{f}" in names, f
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert not any("random_v3" in n or "ray_cluster" in n for n in names)


def test_demo_finds_the_sample_inside_the_package():
    from migrate.demo import sample_dir

    import migrate

    assert sample_dir().is_relative_to(REPO / "migrate") and sample_dir().parent.parent.name == "migrate"
    assert (sample_dir() / "docs.jsonl").read_text().count("\n") == 320
    # the package imported is the one whose sample was found: no stale copy elsewhere on sys.path
    assert Path(migrate.__file__).resolve().parent == sample_dir().resolve().parent.parent
