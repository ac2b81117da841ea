"""``--precision`` (issue 19, part 3): the codecs, the settings, the FAISS + Parquet output end to end, a
database destination that cannot store the type refused before anything is embedded, and ``compare``'s
precision x size sweep. Tiny corpora and the static stand-in; few subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from migrate.config import load_config
from migrate.embed.jina_wire import decode_embedding, encode_embedding
from migrate.precision import VectorFormat, bytes_per_vector, calibrate_int8
from migrate.shards import canonical_hash
from support.engines import jina_migrate

WORDS = "apple banana cherry date elder fig grape honeydew kiwi lemon mango nectarine olive peach quince".split()


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------------- codecs and settings (no subprocess)


def test_binary_is_the_apis_ubinary_and_its_inner_product_is_hamming():
    v = _unit(5, 64)
    fmt = VectorFormat("binary", dims=64)
    codes = fmt.encode(v)
    assert codes.dtype == np.uint8 and codes.shape == (5, 8)
    for row, code in zip(v, codes):  # the API's ubinary bytes (its wire codec) are our stored bytes
        assert encode_embedding(row, "ubinary") == code.tolist()
        assert np.array_equal(decode_embedding(code.tolist(), "ubinary", 64) > 0, row > 0)
    decoded = fmt.decode(codes)
    bits = v > 0
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    assert np.allclose(decoded @ decoded.T, 1 - 2 * hamming / 64, atol=1e-6)


def test_int8_codes_stay_within_half_a_step_and_float16_is_a_cast():
    v = _unit(200, 32, seed=1)
    scale = calibrate_int8(v)
    assert scale == pytest.approx(np.percentile(np.abs(v), 99.9) / 127)
    fmt = VectorFormat("int8", dims=32, scale=scale)
    codes = fmt.encode(v)
    assert codes.dtype == np.int8 and codes.min() >= -127 and codes.max() <= 127
    inside = np.abs(v) <= 127 * scale
    assert np.all(np.abs(fmt.decode(codes) - v)[inside] <= scale / 2 + 1e-7)
    assert np.array_equal(VectorFormat("float16").encode(v), v.astype(np.float16))
    assert [bytes_per_vector(p, 384) for p in ("float32", "float16", "int8", "binary")] == [1536, 768, 384, 48]


def test_precision_is_part_of_the_fingerprint_but_float32_outputs_keep_theirs(tmp_path):
    base = {"model": "local:standin:static", "docs": str(tmp_path)}
    plain = load_config(base).embedding_config()
    assert "precision" not in plain and "rescore" not in plain  # what 0.2 wrote, so its outputs still resume
    binary = load_config(base | {"precision": "binary", "rescore": True}).embedding_config()
    assert binary["precision"] == "binary" and canonical_hash(binary) != canonical_hash(plain)
    assert load_config(base | {"precision": "binary"}).changed_from(plain) == ["precision"]


@pytest.mark.parametrize("flags, says", [
    ({"precision": "binary", "dimensions": "100"}, "--precision: binary vectors pack 8 dimensions per byte"),
    ({"rescore": True}, "--rescore: keeps float32 vectors beside reduced ones"),
    ({"precision": "int8", "index_type": "ivfpq"}, "--precision: int8 applies to flat and hnsw indexes"),
    ({"precision": "half"}, "--precision"),
])
def test_settings_refuse_what_a_precision_cannot_do(flags, says):
    from migrate.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config({"model": "local:standin:static"} | flags)
    assert says in str(err.value)


def test_api_binary_asks_for_ubinary_unless_floats_are_kept():
    api = {"model": "jina-api:jina-embeddings-v3", "dimensions": "256"}
    assert load_config(api | {"precision": "binary"}).backend_options()["embedding_type"] == "ubinary"
    kept = load_config(api | {"precision": "binary", "rescore": True}).backend_options()
    assert kept["embedding_type"] == "float"


# ---------------------------------------------------------------------- end to end through the CLI


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("precision") / "docs.jsonl"
    with path.open("w") as f:
        for i in range(40):
            text = " ".join(WORDS[(i * j) % len(WORDS)] for j in range(1, 9)) + f" item {i}"
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


def _run(docs: Path, out: Path, *flags: str):
    return jina_migrate("run", "--docs", str(docs), "--model", "local:standin:static", "--out", str(out),
                        "--shard-size", "16", *flags)


def test_int8_hnsw_output_migrates_verifies_and_searches(docs, tmp_path):
    out = tmp_path / "int8"
    r = _run(docs, out, "--precision", "int8", "--index-type", "hnsw")
    assert r.returncode == 0, r.stderr[-2000:]
    schema = pq.read_schema(out / "embeddings.parquet")
    assert str(schema.field("vector").type) == "fixed_size_list<element: int8>[64]"
    manifest = json.loads((out / "manifest.json").read_text())
    scale = manifest["quantization"]["int8_scale"]
    first = pq.read_table(sorted((out / "shards").glob("shard-00000-*.parquet"))[0]).column("vector")
    floats = np.asarray(first.combine_chunks().flatten()).reshape(-1, 64)
    assert scale == pytest.approx(np.percentile(np.abs(floats), 99.9) / 127, rel=1e-6)
    codes = np.asarray(pq.read_table(out / "embeddings.parquet").column("vector").combine_chunks().flatten())
    assert np.array_equal(codes[:64 * len(floats)].reshape(-1, 64),
                          np.clip(np.rint(floats / scale), -127, 127).astype(np.int8))
    index = faiss.read_index(str(out / "index.faiss"))
    assert "HNSWSQ" in type(faiss.downcast_index(index.index)).__name__
    v = jina_migrate("verify", "--out", str(out))
    assert v.returncode == 0 and "verify: OK" in v.stdout, v.stdout + v.stderr
    s = jina_migrate("search", "--out", str(out), "apple banana cherry", "-k", "3")
    assert s.returncode == 0 and "d" in s.stdout, s.stderr


def test_binary_with_rescore_output_and_a_resume_with_another_precision_refused(docs, tmp_path):
    out = tmp_path / "binary"
    r = _run(docs, out, "--precision", "binary", "--rescore")
    assert r.returncode == 0, r.stderr[-2000:]
    index = faiss.read_index_binary(str(out / "index.faiss"))
    assert index.d == 64 and index.ntotal == 40
    assert str(pq.read_schema(out / "embeddings.parquet").field("vector").type) == \
        "fixed_size_list<element: uint8>[8]"
    kept = np.load(out / "rescore.npy")
    assert kept.shape == (40, 64) and np.allclose(np.linalg.norm(kept, axis=1), 1, atol=1e-3)
    v = jina_migrate("verify", "--out", str(out))
    assert v.returncode == 0 and "verify: OK" in v.stdout, v.stdout + v.stderr
    again = _run(docs, out, "--precision", "int8")
    assert again.returncode == 3, again.stderr
    line = [x for x in again.stderr.splitlines() if x.startswith("error")]
    assert len(line) == 1 and "changed: precision, rescore" in line[0]


def test_a_destination_that_cannot_store_the_type_is_refused_before_embedding(docs, tmp_path):
    out = tmp_path / "refused"
    r = _run(docs, out, "--precision", "binary", "--sink", f"chroma://{tmp_path / 'ch'}?collection=docs_v3")
    assert r.returncode == 2, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "chroma destinations store float32 vectors; --precision binary" in errors[0]
    assert "Traceback" not in r.stderr and not (out / "shards").exists()


def test_compare_sweeps_precision_by_size(docs, tmp_path):
    out = tmp_path / "f32"
    assert _run(docs, out).returncode == 0
    queries, qrels = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    queries.write_text("".join(json.dumps({"id": f"q{i}", "text": t}) + "\n"
                               for i, t in enumerate(["apple banana", "cherry date", "fig grape kiwi"])))
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{3 * i}\t1\n" for i in range(3)))
    r = jina_migrate("compare", "--new", str(out), "--old-index", str(out / "embeddings.parquet"), "--old-model",
                     "local:standin:static", "--queries", str(queries), "--qrels", str(qrels), "--docs", str(docs),
                     "--dims", "32", "--precisions", "float32,float16,int8,binary,binary+rescore",
                     "--report-dir", str(tmp_path / "rep"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["matryoshka"]
    got = [(x["dims"], x["precision"], x["bytes"]) for x in rows]
    assert got == [(64, "float32", 256), (64, "float16", 128), (64, "int8", 64), (64, "binary", 8),
                   (64, "binary+rescore", 8), (32, "float32", 128), (32, "float16", 64), (32, "int8", 32),
                   (32, "binary", 4), (32, "binary+rescore", 4)]
    assert all(0 <= x["ndcg@10"] <= 1 for x in rows)
    full = {x["precision"]: x for x in rows if x["dims"] == 64}
    assert full["float16"]["overlap_vs_full"] >= 0.9  # a cast keeps the ranking
    assert full["binary+rescore"]["overlap_vs_full"] >= full["binary"]["overlap_vs_full"]
