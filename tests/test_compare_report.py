"""The report reads right: results first, configuration folded and readable, the legend's colours
true, gate and significance wording, labelled histogram axes, a whole headline table first in
report.md, and compare's flags and output-path errors. The HTML is parsed, not grepped."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from reliability_util import assert_clean_failure, cli_inproc

from migrate.report import charts
from migrate.report.build import readable_settings
from migrate.report.data import Query
from migrate.report.engine import CompareConfig, compare
from migrate.report.gates import evaluate_gates
from migrate.report.render_html import render_html
from migrate.report.render_md import render_markdown
from migrate.report.schema import EmbedderRecord, SideDescription
from migrate.report.side import Side


# --------------------------------------------------------------------------- a tiny DOM

class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def ancestors(self) -> list[Node]:
        out, n = [], self.parent
        while n is not None:
            out.append(n)
            n = n.parent
        return out


_VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "circle", "polyline"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def dom(html: str) -> Node:
    b = _Builder()
    b.feed(html)
    return b.root


def document_order(root: Node) -> list[str]:
    return [n.attrs["id"] for n in root.iter() if n.attrs.get("id")]


# --------------------------------------------------------------------------- reports

def _sides(noise: float, seed: int = 0, n: int = 150, dim: int = 24, n_q: int = 30):
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n, dim)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(n)]
    queries = [Query(f"q{i}", f"query {i}") for i in range(n_q)]
    qv = {q.text: rng.normal(size=dim).astype(np.float32) for q in queries}
    enc = lambda t: np.stack([qv[x] for x in t])  # noqa: E731
    old = Side.from_vectors("old", ids, docs + noise * rng.normal(size=docs.shape).astype(np.float32), enc,
                            SideDescription(model="jina-embeddings-v2-base-en", backend="jina-api", stand_in="minilm",
                                            stand_in_detail="all-MiniLM-L6-v2", doc_task=None))
    new = Side.from_vectors("new", ids, docs, enc, SideDescription(
        model="jina-embeddings-v3", backend="jina-api", stand_in="e5-small", doc_task="retrieval.passage",
        query_task="retrieval.query", docs=EmbedderRecord("jina-embeddings-v3", "jina-api", 24, "e5-small"),
        settings=readable_settings({"api_key_file": "/tmp/secret-dir/key", "api_key_env": "JINA_API_KEY",
                                    "rate_limits": {"rpm": 500, "tpm": 1_000_000}, "base_url": "http://x"})))
    sims = np.stack([qv[q.text] for q in queries]) @ docs.T
    return old, new, queries, ids, sims


def _report(noise: float = 1.0, *, all_relevant: bool = False, gates=("ndcg@10 < old - 0.5",), seed: int = 0):
    old, new, queries, ids, sims = _sides(noise, seed)
    if all_relevant:  # every document relevant: the green marks must not hide the yellow rows
        qrels = {q.id: {d: 1 for d in ids} for q in queries}
    else:
        qrels = {q.id: {ids[int(np.argmax(sims[i]))]: 1} for i, q in enumerate(queries)}
    rep = compare(old, new, queries, qrels, CompareConfig(examples=6))
    evaluate_gates(rep, list(gates))
    return rep


def test_results_come_first_and_configuration_is_folded_and_readable():
    rep = _report()
    root = dom(render_html(rep))
    order = document_order(root)
    for first, later in [("verdict", "sides"), ("sides", "metrics"), ("metrics", "agreement"),
                         ("agreement", "examples"), ("examples", "per-query"), ("per-query", "embedding"),
                         ("embedding", "timings")]:
        assert order.index(first) < order.index(later), (first, later, order)
    config = root.by_id("embedding")
    assert config.tag == "details" and config.attrs.get("open") is None
    assert any(a.attrs.get("id") == "embedding" for a in root.by_id("configuration-table").ancestors())
    rows = {tr.find_all("th")[0].text(): [td.text() for td in tr.find_all("td")]
            for tr in root.by_id("configuration-table").find_all("tbody")[0].find_all("tr")}
    cells = [c for values in rows.values() for c in values]
    assert not [c for c in cells if c.lstrip().startswith(("{", "["))], "raw JSON in the configuration"
    assert rows["stand-in (queries)"] == ["minilm", "e5-small"]
    assert rows["stand-in (documents)"] == ["–", "e5-small"]
    assert rows["rate limits"] == ["–", "rpm 500 · tpm 1,000,000"]
    html = render_html(rep)
    assert "secret-dir" not in html and "api_key" not in html and "JINA_API_KEY" not in html
    # the sides summary, above the metrics, names the stand-in of each side
    sides = {li.attrs["data-side"]: li.text() for li in root.by_id("sides").find_all("li")}
    assert "stand-in 'minilm'" in sides["old"] and "jina-embeddings-v2-base-en" in sides["old"]
    assert "stand-in 'e5-small'" in sides["new"] and "documents: jina-embeddings-v3 via jina-api, served by stand-in" \
        in sides["new"]


def test_yellow_rows_are_exactly_the_results_missing_from_the_other_side():
    rep = _report(noise=1.0, all_relevant=True)
    k = rep.k
    root = dom(render_html(rep))
    assert "Yellow row: not in the other side's top-10" in root.by_id("legend").text()
    seen_partial = False
    for ex_node in (n for n in root.iter() if "example" in n.classes()):
        overlap = float(ex_node.attrs["data-overlap"])
        sides = {s.attrs["data-side"]: s for s in ex_node.iter() if "side" in s.classes()}
        ids = {name: [tr.find_all("code")[0].text() for tr in node.find_all("tbody")[0].find_all("tr")]
               for name, node in sides.items()}
        for name, node in sides.items():
            other = set(ids["new" if name == "old" else "old"])
            trs = node.find_all("tbody")[0].find_all("tr")
            yellow = [tr.find_all("code")[0].text() for tr in trs if "only-here" in tr.classes()]
            assert yellow == [d for d in ids[name] if d not in other]
            assert len(yellow) == round((1 - overlap) * k)
            assert all(tr.find_all("td")[2].text().startswith("✓") for tr in trs)  # every one judged relevant
        seen_partial |= 0 < overlap < 1
    assert seen_partial, "no example with a partial overlap to check"


def test_gate_and_significance_wording():
    one = _report(gates=("ndcg@10 < old - 0.5",))
    two = _report(gates=("ndcg@10 < old - 0.5", "overlap@10 < 0.0"))
    v1, v2 = dom(render_html(one)).by_id("verdict").text(), dom(render_html(two)).by_id("verdict").text()
    assert "the quality gate passed" in v1 and "gates passed" not in v1
    assert "all 2 quality gates passed" in v2
    assert "The quality gate passed." in render_markdown(one) and "All 2 quality gates passed." in render_markdown(two)
    # a clear change is called by its direction; a tiny one is not significant, and the CI is given
    clear = _report(noise=1.5)
    s = clear.metrics.headline
    assert s.p_randomization < 0.05 and s.delta > 0
    assert "significantly better" in dom(render_html(clear)).by_id("verdict").text()
    tiny = _report(noise=0.02, seed=4)
    t = tiny.metrics.headline
    assert t.p_randomization >= 0.05
    verdict = dom(render_html(tiny)).by_id("verdict").text()
    assert "no significant difference" in verdict and "better" not in verdict and "worse" not in verdict
    assert f"95 % CI {t.delta_ci[0]:+.4f} to {t.delta_ci[1]:+.4f}" in verdict


def test_histogram_axes_are_labelled_at_both_ends():
    svg = dom(charts.histogram(["a", "b", "c"], [3, 7, 1], label="queries by x", x_label="x things",
                               y_label="queries"))
    ticks = [int(t.text()) for t in svg.find_all("text") if "y-tick" in t.classes()]
    assert ticks[0] == 0 and ticks[-1] >= 7 and ticks == sorted(ticks) and len(ticks) >= 3
    assert [t.text() for t in svg.find_all("text") if "x-label" in t.classes()] == ["x things"]
    assert [t.text() for t in svg.find_all("text") if "y-label" in t.classes()] == ["queries"]
    assert [t.text() for t in svg.find_all("text") if "x-tick" in t.classes()] == ["a", "b", "c"]


@pytest.mark.parametrize("judged", [True, False])
def test_markdown_starts_with_a_whole_headline_table_naming_the_models(judged):
    rep = _report()
    if not judged:
        old, new, queries, _, _ = _sides(1.0)
        rep = compare(old, new, queries, None, CompareConfig(examples=2))
    md = render_markdown(rep)
    lines = md.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    table = []
    for ln in lines[first:]:
        if not ln.startswith("|"):
            break
        table.append(ln)
    # `jina-migrate demo` prints the first eight lines starting with "|": exactly this table
    assert len(table) == 8, table
    assert table == [ln for ln in lines if ln.startswith("|")][:8]
    assert "old (jina-embeddings-v2-base-en)" in table[0] and "new (jina-embeddings-v3)" in table[0]
    if judged:
        assert table[2].startswith("| nDCG@10 |") and table[7].startswith("| overlap@10")
    else:
        assert table[2].startswith("| overlap@10")
    assert "Old: **old**" not in md and "jina-embeddings-v2-base-en" in md and "stand-in 'e5-small'" in md


# --------------------------------------------------------------------------- the command

def _queries(tmp_path: Path) -> Path:
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"_id": "1", "text": "hello"}) + "\n")
    return q


@pytest.mark.parametrize("case", ["report-dir-file", "html-under-file", "json-out-dir", "markdown-unwritable"])
def test_unwritable_outputs_fail_in_one_line_before_anything_loads(tmp_path, case):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    (tmp_path / "a-dir").mkdir()
    extra, flag = {
        "report-dir-file": (["--report-dir", str(blocker)], "--report-dir"),
        "html-under-file": (["--html", str(blocker / "sub" / "r.html")], "--html"),
        "json-out-dir": (["--json-out", str(tmp_path / "a-dir")], "--json-out"),
        "markdown-unwritable": (["--markdown", "/proc/no-such-place/r.md"], "--markdown"),
    }[case]
    args = ["compare", "--new", tmp_path / "missing-output", "--old-model", "local:standin:static",
            "--docs", tmp_path / "missing-docs.jsonl", "--queries", _queries(tmp_path),
            "--report-dir", tmp_path / "rep", *extra]
    rc, _, err = cli_inproc(*args)
    line = assert_clean_failure(rc, err, None, code=2, match=flag)
    assert "missing-output" not in line  # refused before the sides were even looked at


def test_compare_speaks_the_vocabulary_of_run_and_search():
    rc, out, _ = cli_inproc("compare", "--help")
    assert rc == 0
    for flag in ("--old-index", "--docs", "-k"):
        assert flag in out
    # the old spellings still parse (README examples keep working): missing queries is the error, not the flag
    for args in (["--old", "x.faiss", "--corpus", "d.jsonl", "--k", "5"], ["--old-index", "x.faiss", "--docs", "d.jsonl", "-k", "5"]):
        rc, _, err = cli_inproc("compare", *args)
        assert rc == 2 and "compare needs queries" in err, err
