"""An SQL query over a SQLite file is an old index and its documents (issue 17, item 4): ``sqlite:///PATH?query=``.

A hand-made schema (integer key, text, float32 BLOB vectors, a flag column) is read through the user's own
SELECT: only the rows it returns migrate, with the columns it names; anything but one SELECT is refused in one
line, and the file is opened read-only.
"""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.engines import jina_migrate

pytest.importorskip("static_model")


def _app_db(path) -> dict[int, str]:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE chunks (pk INTEGER PRIMARY KEY, body TEXT, emb BLOB, lang TEXT, deleted INTEGER)")
    texts = {}
    for i in range(20):
        v = np.random.default_rng(i).standard_normal(16).astype("<f4")
        texts[i] = f"row {i} of a hand-made table"
        con.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)", (i, texts[i], (v / np.linalg.norm(v)).tobytes(),
                                                                   "en", int(i % 5 == 3)))
    con.commit()
    con.close()
    return texts


def test_a_sqlite_query_migrates_the_rows_it_selects(tmp_path):
    db = tmp_path / "app.db"
    texts = _app_db(db)
    before = db.read_bytes()
    old = f"sqlite://{db}?query=SELECT pk, body, emb AS vector, lang FROM chunks WHERE deleted = 0&id=pk&text=body"
    out = tmp_path / "out"
    proc = jina_migrate("run", "--old-index", old, "--model", "local:standin:static", "--out", str(out), "--yes")
    assert proc.returncode == 0, proc.stderr[-2000:]
    t = pq.read_table(out / "embeddings.parquet", columns=["id", "text_sha256"])
    want = {str(i): hashlib.sha256(x.encode()).hexdigest() for i, x in texts.items() if i % 5 != 3}
    assert dict(zip(t.column("id").to_pylist(), t.column("text_sha256").to_pylist())) == want
    assert db.read_bytes() == before  # read-only

    for query, says in (("DELETE FROM chunks", "needs one SELECT"),
                        ("SELECT pk, body FROM chunks", "the query returns no id column")):
        proc = jina_migrate("plan", "--old-index", f"sqlite://{db}?query={query}", "--from-model", "custom:16")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert says in proc.stderr.splitlines()[0], proc.stderr
    assert db.read_bytes() == before
