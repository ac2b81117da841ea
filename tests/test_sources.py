"""Readers and validation: every index type, every file type, every broken input."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli
from migrate.errors import InputError, ValidationFailed
from migrate.sources import (DocumentSpec, FileDocuments, OldIndexSpec, open_documents, open_old_index,
                             read_old_keys, scan_documents)
from migrate.sources.faiss_index import read_faiss

RNG = np.random.default_rng(0)


def unit(n: int, d: int) -> np.ndarray:
    v = RNG.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(index, path: Path) -> Path:
    faiss.write_index(index, str(path))
    return path


@pytest.mark.parametrize("kind", ["flat", "idmap", "idmap2", "hnsw", "ivfflat", "ivfpq", "hnsw_idmap"])
def test_faiss_index_types(kind, tmp_path):
    n, d = 300, 16
    vecs = unit(n, d)
    ids = np.arange(500, 500 + n, dtype=np.int64)
    if kind == "flat":
        idx = faiss.IndexFlatIP(d)
        idx.add(vecs)
    elif kind in ("idmap", "idmap2"):
        idx = (faiss.IndexIDMap if kind == "idmap" else faiss.IndexIDMap2)(faiss.IndexFlatIP(d))
        idx.add_with_ids(vecs, ids)
    elif kind == "hnsw":
        idx = faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT)
        idx.add(vecs)
    elif kind == "hnsw_idmap":
        idx = faiss.IndexIDMap2(faiss.IndexHNSWFlat(d, 8))
        idx.add_with_ids(vecs, ids)
    elif kind == "ivfflat":
        q = faiss.IndexFlatL2(d)
        idx = faiss.IndexIVFFlat(q, d, 4)
        idx.train(vecs)
        idx.add(vecs)
    else:
        q = faiss.IndexFlatL2(d)
        idx = faiss.IndexIVFPQ(q, d, 4, 4, 4)
        idx.train(vecs)
        idx.add(vecs)
    info = read_faiss(write(idx, tmp_path / "x.faiss"))
    assert info.ntotal == n and info.dim == d
    assert info.metric == ("ip" if kind in ("flat", "idmap", "idmap2", "hnsw") else "l2")
    if "id" in kind:
        assert info.faiss_ids.tolist() == ids.tolist()
    else:
        assert info.faiss_ids is None
    assert info.vectors is not None and info.vectors.shape == (n, d)
    if kind == "ivfpq":
        assert info.lossy  # PQ codes only approximate the vectors
        assert not np.allclose(info.vectors, vecs, atol=1e-4)
    else:
        assert not info.lossy and np.allclose(info.vectors, vecs, atol=1e-6)


def test_index_without_stored_vectors_says_why(tmp_path):
    idx = faiss.IndexLSH(16, 32)
    idx.add(unit(10, 16))
    info = read_faiss(write(idx, tmp_path / "lsh.faiss"))
    assert info.ntotal == 10
    assert info.vectors is None or info.lossy
    if info.vectors is None:
        assert "cannot reconstruct" in info.why_no_vectors


def test_documents_formats_agree(tmp_path):
    rows = [{"id": i, "title": f"T{i}", "text": f"text {i}"} for i in range(5)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("id,title,text\n" + "\n".join(f'{r["id"]},{r["title"]},"{r["text"]}"' for r in rows))
    got = [open_documents(tmp_path / f"d.{ext}", title_field="title") for ext in ("jsonl", "parquet", "csv")]
    for docs in got:
        assert docs.ids == ["0", "1", "2", "3", "4"]
        assert docs.texts[2] == "T2 text 2"


def test_beir_layout_is_understood(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "a1", "title": "", "text": "Body only."}) + "\n")
    docs = open_documents(tmp_path / "corpus.jsonl", title_field="title")
    assert docs.ids == ["a1"] and docs.texts == ["Body only."]


def test_string_ids_map_through_id_map(tmp_path, sample_dir):
    old = open_old_index(sample_dir / "old_index.faiss", id_map=sample_dir / "id_map.csv")
    assert old.ids[0] == "kb-0001" and old.faiss_ids[0] == 1001 and old.vectors.shape == (320, 384)


def test_dataset_with_vectors(sample_dir):
    old = open_old_index(sample_dir / "old_vectors.parquet")
    assert old.ids[:2] == ["kb-0001", "kb-0002"] and old.vectors.shape == (320, 384) and old.texts


def scan(docs: Path, old: Path | None = None, **kw):
    """The planning scan over a documents file and an optional old index (as `run` and `plan` do it)."""
    return scan_documents(FileDocuments(DocumentSpec(str(docs))), read_old_keys(OldIndexSpec(str(old))) if old else None,
                          **kw)


def _docs(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "docs.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_validation_missing_duplicate_empty(tmp_path):
    d = _docs(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "  "}])
    vecs = unit(3, 8)
    pq.write_table(pa.table({"id": ["a", "b", "zz"], "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(vecs.reshape(-1)), 8)}), tmp_path / "old.parquet")
    old = tmp_path / "old.parquet"
    with pytest.raises(ValidationFailed, match="1 vector has no document.*zz"):
        scan(d, old)
    with pytest.raises(ValidationFailed, match=r"1 document has empty text \(id b\)"):
        scan(d, old, on_missing="skip")
    rows = scan(d, old, on_missing="skip", on_empty="skip")
    assert rows.ids.to_pylist() == ["a"]
    assert rows.report.skipped_missing == 1 and rows.report.examples["skipped_missing"] == ["zz"]
    assert rows.report.skipped_empty == 1 and rows.report.examples["skipped_empty"] == ["b"]
    dup = _docs(tmp_path, [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ValidationFailed, match=r"duplicate document ids: a \('a' at .*docs.jsonl:1 and .*docs.jsonl:2\)"):
        scan(dup)


def test_row_order_index_with_fewer_documents_is_refused(tmp_path):
    idx = faiss.IndexFlatIP(8)
    idx.add(unit(5, 8))
    p = write(idx, tmp_path / "rows.faiss")
    d = _docs(tmp_path, [{"id": "a", "text": "x"}])
    with pytest.raises(ValidationFailed, match="holds 5 vectors but .* only 1"):
        scan(d, p)


@pytest.mark.parametrize("content,match", [
    (b'{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', r"docs.jsonl:2: invalid JSON"),
    (b'{"id": "a", "text": "caf\xe9"}\n', r"docs.jsonl:1: not valid UTF-8"),
    (b'[1, 2]\n', r"docs.jsonl:1: expected a JSON object"),
    (b'', r"no records found"),
    (b'{"id": "a", "text": "nul\\u0000byte"}\n', r"contain NUL bytes"),
    (b'{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n', r"docs.jsonl:2: mixed id types"),
    (b'{"id": "a", "text": "x\\ud800y"}\n', r"docs.jsonl:1: .*lone UTF-16 surrogate"),
    (b'{"id": 1.5, "text": "a"}\n', r"docs.jsonl:1: id 1.5 is a number \(float\)"),
])
def test_broken_jsonl(tmp_path, content, match):
    p = tmp_path / "docs.jsonl"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        open_documents(p)


def test_ragged_and_nan_vectors(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "vector": [[0.1, 0.2], [0.3]]}), tmp_path / "ragged.parquet")
    with pytest.raises(InputError, match="different dimensions"):
        open_old_index(tmp_path / "ragged.parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "vector": [[0.1, float("nan")], [0.3, 0.1]]}), tmp_path / "nan.parquet")
    with pytest.raises(InputError, match=r"rows \[0\] hold NaN"):
        open_old_index(tmp_path / "nan.parquet")


# --------------------------------------------------------------------------- through the CLI

def one_line_error(proc, *needles: str, code: int = 2) -> None:
    """One ``error:`` line holding every needle, and exit ``code`` (2: bad input, the README's exit-code table)."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_missing_documents_for_vector_ids(tmp_path, small_docs, sample_dir):
    proc = cli("run", "--docs", str(small_docs), "--old-index", str(sample_dir / "old_index.faiss"), "--id-map",
               str(sample_dir / "id_map.csv"), "--model", "local:standin:minilm", "--out", str(tmp_path / "o"))
    one_line_error(proc, "224 vectors have no document", "old_index.faiss", "--on-missing skip")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_cli_duplicate_ids(tmp_path):
    d = _docs(tmp_path, [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}])
    one_line_error(cli("run", "--docs", str(d), "--model", "local:standin:minilm", "--out", str(tmp_path / "o")),
                   "duplicate document ids: x", "docs.jsonl")


def test_cli_dimension_mismatch(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "vector": [[0.1, 0.2], [0.3]]}),
                   tmp_path / "old.parquet")
    d = _docs(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    one_line_error(cli("run", "--docs", str(d), "--old-index", str(tmp_path / "old.parquet"), "--model",
                       "local:standin:minilm", "--out", str(tmp_path / "o")), "different dimensions", "old.parquet")


@pytest.mark.parametrize("name,data", [("old.faiss", b"\x00garbage" * 10), ("old.parquet", b"PAR1 truncated")])
def test_cli_unreadable_index(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    d = _docs(tmp_path, [{"id": "a", "text": "x"}])
    one_line_error(cli("run", "--docs", str(d), "--old-index", str(tmp_path / name), "--model",
                       "local:standin:minilm", "--out", str(tmp_path / "o")), name)


def test_cli_wrong_file_type_and_missing_file(tmp_path):
    (tmp_path / "docs.xml").write_text("<docs/>")
    one_line_error(cli("run", "--docs", str(tmp_path / "docs.xml"), "--out", str(tmp_path / "o")), "unknown file type")
    one_line_error(cli("run", "--docs", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")), "file not found")


def test_cli_bad_flag_values(tmp_path, small_docs):
    one_line_error(cli("run", "--docs", str(small_docs), "--out", str(tmp_path / "o"), "--task", "retrieval"),
                   "--task: expected one of")
    one_line_error(cli("run", "--docs", str(small_docs), "--out", str(tmp_path / "o"), "--shard", "3/2"), "--shard")


def test_a_parquet_file_whose_column_names_are_not_utf8_is_one_error(tmp_path):
    """A damaged footer (a column name that is not UTF-8) made pyarrow raise UnicodeDecodeError: a traceback
    from `run`, and a flaky property test. Every reader of the file now gives one InputError line."""
    p = tmp_path / "damaged.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "vector": [[1.0, 0.0], [0.0, 1.0]],
                             "zzzzcol": [1, 2]}), p)
    p.write_bytes(p.read_bytes().replace(b"zzzzcol", b"\xd7zzzcol"))
    for read in (open_documents, open_old_index):
        with pytest.raises(InputError, match=r"damaged.parquet: cannot read as parquet \('utf-8' codec"):
            read(p)
    for args in (["--docs", str(p)], ["--docs", str(tmp_path / "d.jsonl"), "--old-index", str(p)]):
        (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "x"}\n')
        proc = cli("run", *args, "--model", "local:standin:static", "--out", str(tmp_path / "o"))
        one_line_error(proc, "damaged.parquet: cannot read as parquet")
        assert not (tmp_path / "o" / "manifest.json").exists()


def test_a_binary_id_column_is_refused_by_every_reader(tmp_path):
    """Documents and vector datasets share one id rule: strings or integers, never bytes cast into text."""
    p = tmp_path / "binary_ids.parquet"
    pq.write_table(pa.table({"id": pa.array([b"a", b"b"], pa.binary()), "text": ["x", "y"],
                             "vector": [[1.0, 0.0], [0.0, 1.0]]}), p)
    for read in (open_documents, open_old_index):
        with pytest.raises(InputError, match="id field 'id' has type binary; ids must be strings or integers"):
            read(p)
