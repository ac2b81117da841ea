"""compare's inputs and gates: query/qrels formats, user errors, gate grammar and outcomes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from migrate.errors import ConfigError, GateFailed, InputError
from migrate.report.data import Query, read_corpus, read_qrels, read_queries
from migrate.report.engine import CompareConfig, compare
from migrate.report.gates import evaluate_gates, parse_gate, raise_if_failed
from migrate.report.render_json import render_json
from migrate.report.side import Side


def test_query_formats(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "alpha"}\n\n{"id": 2, "query": "beta"}\n')
    (tmp_path / "q.csv").write_text('id,text\n1,"alpha, with comma"\n2,beta\n')
    (tmp_path / "q.tsv").write_text("qid\tquery\n1\talpha\n2\tbeta\n")
    assert read_queries(tmp_path / "q.jsonl") == [Query("1", "alpha"), Query("2", "beta")]
    assert read_queries(tmp_path / "q.csv")[0] == Query("1", "alpha, with comma")
    assert read_queries(tmp_path / "q.tsv", only={"2"}) == [Query("2", "beta")]
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text('{"_id": "7", "text": "x"}\n{"_id": "8", "text": "y"}\n')
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n7\td1\t1\n7\td2\t2\n")
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "body"}\n{"_id": "d2", "text": "only"}\n')
    qrels = read_qrels(beir, split="test")
    assert qrels == {"7": {"d1": 1, "d2": 2}}
    assert [q.id for q in read_queries(beir, only=set(qrels))] == ["7"]
    c = read_corpus(beir)
    assert c.ids == ["d1", "d2"] and c.texts == ["T body", "only"]


def test_trec_qrels_and_errors(tmp_path):
    (tmp_path / "a.qrels").write_text("q1 0 d1 1\nq1 0 d2 0\nq2 Q0 d3 3\n")
    assert read_qrels(tmp_path / "a.qrels") == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 3}}
    (tmp_path / "bad.qrels").write_text("q1 0 d1 1\nq1 d2\n")
    with pytest.raises(InputError, match=r"bad.qrels:2: expected 3 \(BEIR\) or 4 \(TREC\)"):
        read_qrels(tmp_path / "bad.qrels")
    (tmp_path / "bad.jsonl").write_text('{"_id": "1", "text": "a"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        read_queries(tmp_path / "bad.jsonl")
    (tmp_path / "dup.jsonl").write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(InputError, match="duplicate query id '1'"):
        read_queries(tmp_path / "dup.jsonl")
    (tmp_path / "nohdr.csv").write_text("1,alpha\n")
    with pytest.raises(InputError, match="header must name an id column"):
        read_queries(tmp_path / "nohdr.csv")
    with pytest.raises(InputError, match="does not exist"):
        read_queries(tmp_path / "missing.jsonl")


def _report(qrels=True):
    rng = np.random.default_rng(5)
    docs = rng.normal(size=(80, 8)).astype(np.float32)
    ids = [str(i) for i in range(80)]
    qs = [Query(f"q{i}", f"t{i}") for i in range(12)]
    qv = {q.text: rng.normal(size=8).astype(np.float32) for q in qs}
    enc = lambda t: np.stack([qv[x] for x in t])  # noqa: E731
    old = Side.from_vectors("old", ids, docs + rng.normal(size=docs.shape).astype(np.float32), enc)
    new = Side.from_vectors("new", ids, docs, enc)
    late = Side.from_vectors("late-chunked", ids, docs + 0.1 * rng.normal(size=docs.shape).astype(np.float32), enc)
    judg = {q.id: {ids[int(np.argmax(docs @ qv[q.text]))]: 1} for q in qs} if qrels else None
    return compare(old, new, qs, judg, CompareConfig(examples=3), extra=[late])


def test_gate_grammar():
    g = parse_gate("ndcg@10 < old - 0.01", {"old", "new"})
    assert (g.side, g.metric, g.op, g.rhs_side, g.rhs_metric, g.arith, g.arith_number) == \
        ("new", "ndcg@10", "<", "old", "ndcg@10", "-", 0.01)
    g = parse_gate("new.recall@100<=old.recall@10*1.5", {"old", "new"})
    assert (g.metric, g.op, g.rhs_metric, g.arith) == ("recall@100", "<=", "recall@10", "*")
    for bad in ("ndcg@10", "ndcg@10 < ", "ndcg@10 < old -", "ndcg@10 < 0.5 - 0.1", "ndcg@10 < bogus", "nd$cg < 1"):
        with pytest.raises(ConfigError):
            parse_gate(bad, {"old", "new"})


def test_gates_against_a_report():
    rep = _report()
    means = rep.metrics.means
    res = evaluate_gates(rep, ["ndcg@10 < old - 0.01", "ndcg@10 > old", "overlap@10 < 1.01", "rbo >= 0",
                               "late-chunked.ndcg@10 < new - 0.5", "mrr@10 == new"])
    assert res[0].threshold == pytest.approx(means["old"]["ndcg@10"] - 0.01)
    assert [r.failed for r in res] == [means["new"]["ndcg@10"] < means["old"]["ndcg@10"] - 0.01,
                                          means["new"]["ndcg@10"] > means["old"]["ndcg@10"], True, True, False, True]
    with pytest.raises(GateFailed) as exc:
        raise_if_failed(res)
    assert exc.value.exit_code == 7 and "overlap@10 < 1.01" in str(exc.value)
    raise_if_failed([r for r in res if not r.failed])  # passing gates raise nothing
    assert rep.gates == res and json.loads(render_json(rep))["gates"][2]["failed"] is True
    with pytest.raises(ConfigError, match="measured overlap@10"):
        evaluate_gates(rep, ["overlap@5 < 0.5"])
    with pytest.raises(ConfigError, match="no 'old' value"):
        evaluate_gates(rep, ["old.rbo < 0.5"])
    with pytest.raises(ConfigError, match="needs relevance judgments"):
        evaluate_gates(_report(qrels=False), ["ndcg@10 < old"])


def test_extra_side_rows_for_late_chunking_comparisons():
    rep = _report()
    rows = rep.metrics.rows
    assert [(r.side, r.vs) for r in rows] == [("new", "old"), ("late-chunked", "old")]
    assert set(rep.metrics.means) == {"old", "new", "late-chunked"}
    assert 0 <= rep.extra_agreement["late-chunked"].overlap_mean <= 1
    assert len(rep.examples) == 3 and set(rep.examples[0].sides) == {"old", "new"}


def test_byte_order_mark_is_accepted_and_bad_utf8_names_its_line(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "q.jsonl").write_bytes(bom + b'{"_id": "1", "text": "alpha"}\n{"_id": "2", "text": "beta"}\n')
    (tmp_path / "q.csv").write_bytes(bom + b"id,text\n1,alpha\n")
    (tmp_path / "qrels.tsv").write_bytes(bom + b"query-id\tcorpus-id\tscore\n1\td1\t1\n")
    assert [q.id for q in read_queries(tmp_path / "q.jsonl")] == ["1", "2"]
    assert read_queries(tmp_path / "q.csv") == [Query("1", "alpha")]
    assert read_qrels(tmp_path / "qrels.tsv") == {"1": {"d1": 1}}
    (tmp_path / "bad.jsonl").write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: invalid UTF-8 \(byte 0xe9\)"):
        read_queries(tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_bytes(b"id,text\n1,ok\n2,ok\n3,\xff\n")
    with pytest.raises(InputError, match=r"bad.csv:4: invalid UTF-8"):
        read_queries(tmp_path / "bad.csv")
