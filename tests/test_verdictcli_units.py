"""The pieces the label-free CLI is made of, checked directly (fast): query logs, labels files, the pool
file, labels alone as evidence."""

from __future__ import annotations

import json
import math

import pytest

from migrate.errors import InputError
from migrate.report.data import Query, read_labels, read_query_log
from migrate.report.labelfree import combine_labels, label_pool, read_pool, write_pool
from migrate.report.verdict import decide


def test_query_logs_in_three_formats_deduplicated_and_sampled(tmp_path):
    (tmp_path / "log.txt").write_text("reset my password\n\nReset  my PASSWORD \nwhere is my order\n")
    log = read_query_log(tmp_path / "log.txt")
    assert [q.text for q in log.queries] == ["reset my password", "where is my order"]
    assert (log.read, log.unique, log.format) == (3, 2, "text")
    assert log.queries[0].id == read_query_log(tmp_path / "log.txt").queries[0].id  # ids from the text: stable
    (tmp_path / "log.jsonl").write_text('"reset my password"\n{"query": "track parcel", "id": "q9"}\n'
                                        '{"text": "refund time"}\n')
    got = read_query_log(tmp_path / "log.jsonl").queries
    assert [q.text for q in got] == ["reset my password", "track parcel", "refund time"] and got[1].id == "q9"
    (tmp_path / "log.csv").write_text("timestamp,query\n1,\"a, b and c\"\n2,\n3,d e f\n")
    assert [q.text for q in read_query_log(tmp_path / "log.csv").queries] == ["a, b and c", "d e f"]
    many = tmp_path / "many.txt"
    many.write_text("".join(f"query number {i}\n" for i in range(100)))
    a = read_query_log(many, sample=10, seed=1).queries
    lines = many.read_text().splitlines()
    many.write_text("\n".join(reversed(lines)) + "\n")
    assert read_query_log(many, sample=10, seed=1).queries == a  # the sample does not depend on the file's order
    assert {q.text for q in read_query_log(many, sample=10, seed=2).queries} != {q.text for q in a}
    (tmp_path / "bad.csv").write_text("when,who\n1,2\n")
    with pytest.raises(InputError, match="names no query column"):
        read_query_log(tmp_path / "bad.csv")
    (tmp_path / "dup.jsonl").write_text('{"id": "1", "query": "a"}\n{"id": "1", "query": "b"}\n')
    with pytest.raises(InputError, match=r"dup.jsonl:2: query id '1' was already used on line 1"):
        read_query_log(tmp_path / "dup.jsonl")


def test_labels_files_jsonl_and_csv(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"qid": "q1", "doc_id": "a", "grade": 1}\n{"qid": "q1", "doc_id": "b", '
                                      '"grade": null, "skip": true}\n{"qid": "q1", "doc_id": "a", "grade": 3}\n')
    assert read_labels(tmp_path / "l.jsonl") == {("q1", "a"): 3}  # a relabel wins, a skip is no label
    (tmp_path / "l.csv").write_text("qid,doc_id,query,text,grade\nq1,a,x,y,2\nq1,b,x,y,\n")
    assert read_labels(tmp_path / "l.csv") == {("q1", "a"): 2}
    (tmp_path / "bad.csv").write_text("qid,doc_id,grade\nq1,a,2\nq1,b,high\n")
    with pytest.raises(InputError, match=r"bad.csv:3: grade 'high' is not 0, 1, 2 or 3"):
        read_labels(tmp_path / "bad.csv")
    (tmp_path / "bool.jsonl").write_text('{"qid": "q1", "doc_id": "a", "grade": true}\n')
    with pytest.raises(InputError, match="bool.jsonl:1: grade True is not"):
        read_labels(tmp_path / "bool.jsonl")


LISTS = {"old": {"q1": ["a", "b", "c"], "q2": ["d", "e"]}, "new": {"q1": ["b", "x"], "q2": ["e", "d", "y"]}}
QUERIES = [Query("q1", "first"), Query("q2", "second")]


def test_pool_file_round_trip_and_labels_alone(tmp_path):
    text = {d: f"text of {d}" for d in "abcdexy"}
    n = write_pool(tmp_path / "pool.jsonl", QUERIES, LISTS, text, old="old", new="new", k=3)
    pairs = read_pool(tmp_path / "pool.jsonl")
    assert n == len(pairs) == 7 and [(p.qid, p.doc_id) for p in pairs][:4] == [("q1", "a"), ("q1", "b"),
                                                                                ("q1", "x"), ("q1", "c")]
    assert pairs[1].ranks == {"old": 2, "new": 1} and pairs[2].ranks == {"old": None, "new": 2}
    # every pooled pair labelled: labels alone are the exact scaled DCG@3 difference
    grade = {"a": 3, "b": 1, "c": 0, "x": 2, "d": 0, "e": 3, "y": 1}
    labels = {(p.qid, p.doc_id): grade[p.doc_id] for p in pairs}
    ppi = combine_labels(label_pool(QUERIES, LISTS, old="old", new="new", k=3), labels, old="old", new="new",
                         labels_path="l.jsonl")

    def dcg(lst):
        return sum(grade[d] / math.log2(r + 2) for r, d in enumerate(lst[:3]))

    z = 3 * sum(1 / math.log2(i + 1) for i in range(1, 4))
    want = sum(dcg(LISTS["new"][q]) - dcg(LISTS["old"][q]) for q in ("q1", "q2")) / 2 / z
    assert ppi.estimate == pytest.approx(want) and ppi.labels_only == pytest.approx(want) and ppi.inclusion == 1.0
    v = decide(ppi=ppi, labels_only=True)
    assert v.evidence == "7 human labels on a random sample of the pooled pairs (no judge)"
    with pytest.raises(InputError, match=r"--labels l.jsonl: the label for query 'q1', document 'zzz' is not on a "
                                         r"pooled pair"):
        combine_labels(label_pool(QUERIES, LISTS, old="old", new="new", k=3), {("q1", "zzz"): 1}, old="old",
                       new="new", labels_path="l.jsonl")
    (tmp_path / "notpool.jsonl").write_text(json.dumps({"qid": "q1"}) + "\n")
    with pytest.raises(InputError, match="not a pool file"):
        read_pool(tmp_path / "notpool.jsonl")


def test_label_reads_single_key_presses_from_a_terminal(tmp_path):
    """In a real terminal (a pseudo-terminal here) ``label`` takes one key press per answer, no Enter."""
    import os
    import pty
    import select
    import subprocess
    import time

    from support.verdictcli import SCRIPT

    text = {d: f"text of {d}" for d in "abcdexy"}
    write_pool(tmp_path / "pool.jsonl", QUERIES, LISTS, text, old="old", new="new", k=3)
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen([str(SCRIPT), "label", str(tmp_path / "pool.jsonl"), "--labels",
                             str(tmp_path / "l.jsonl"), "--sample", "7"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(needle: bytes, timeout: float = 120) -> None:
        nonlocal seen
        end = time.time() + timeout
        while needle not in seen and time.time() < end:
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert needle in seen, seen[-500:]

    try:
        for key, shown in ((b"3", b"pair 1 of 7"), (b"s", b"pair 2 of 7"), (b"q", b"pair 3 of 7")):
            read_until(shown)
            os.write(master, key)
        read_until(b"saved in")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    got = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [r["grade"] for r in got] == [3, None] and got[1]["skip"] is True
