"""Typed data of a comparison report: what the engine produces and the renderers read.

What: dataclasses for every part of a report (the sides and how each embedded, judged
metrics, label-free agreement, per-query rows, side-by-side examples, the Matryoshka
sweep, ANN checks, gates) and ``CompareReport.to_dict()`` for the JSON output.
Why: renderers and gates reading free dicts let a field that was never filled (an index
type read from the wrong manifest section, a stand-in never recorded) pass unnoticed;
typed fields make a missing or misnamed value an error at the place it is made.

The JSON layout (``report_version`` 2) keeps version 1's keys where they existed;
new are ``sides.*.description`` typed fields (``stand_in``, ``docs_stand_in``,
``search``, ``settings``) and ``metrics.headline``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from migrate.report.evidence import JudgedResult, KnownItemResult, PPIResult, Verdict
from migrate.report.stats import PairedStats

REPORT_VERSION = 2
#: A change is called a difference only below this p-value (paired randomization test).
SIGNIFICANCE = 0.05


# --------------------------------------------------------------------------- sides

@dataclass
class EmbedderRecord:
    """How a set of vectors was embedded, as a manifest or a backend records it (no secrets)."""

    model: str = ""
    backend: str = ""
    dimensions: int | None = None
    stand_in: str | None = None

    @classmethod
    def from_mapping(cls, d: Any) -> EmbedderRecord | None:
        """From a manifest's ``embedder`` section (``EmbedderInfo.as_dict()``); None when absent."""
        if not isinstance(d, dict) or not d.get("model"):
            return None
        dims = d.get("dimensions")
        return cls(model=str(d["model"]), backend=str(d.get("backend") or ""),
                   dimensions=int(dims) if isinstance(dims, int) and dims > 0 else None,
                   stand_in=str(d["stand_in"]) if d.get("stand_in") else None)


@dataclass
class SideDescription:
    """How one side embedded its documents and its queries, enough to rerun the report.

    ``stand_in`` names the stand-in model that embedded this side's *queries* (the local
    server's ``X-Jina-Migrate-Stand-In`` header, or a ``local:standin:NAME`` spec);
    ``docs`` is how the *documents* were embedded when that is recorded (a migration
    manifest), with its own stand-in. ``settings`` holds the remaining backend settings
    as readable text; key files and key values never enter it.
    """

    source: str = ""
    model: str = ""
    backend: str = ""
    query_task: str = "none"
    query_prefix: str | None = None  # None: applied by the server, or not known
    doc_task: str | None = None  # None: as stored in an old index (not known)
    doc_prefix: str | None = None
    dimensions: int = 0  # width of the query vectors (measured after the queries were embedded)
    normalized: bool = True
    max_tokens: int | None = None
    stand_in: str | None = None
    stand_in_detail: str | None = None
    docs: EmbedderRecord | None = None
    docs_stand_in_detail: str | None = None
    late_chunking: bool | None = None
    chunker: str | None = None
    index_type: str | None = None
    collection: str | None = None  # the database collection searched (its address, never a secret)
    search: str = "exact search over the vectors in memory"
    settings: dict[str, str] = field(default_factory=dict)
    #: What was compared, precisely enough for ``cutover --require-report`` to refuse a report about anything
    #: else (``migrate.report.gates.collection_subject`` / ``output_subject``); None for other sides.
    subject: dict[str, Any] | None = None

    @property
    def identity(self) -> str:
        """One plain sentence: which model really made this side's query vectors."""
        if self.stand_in:
            what = f" ({self.stand_in_detail})" if self.stand_in_detail else ""
            if self.model.startswith("standin:"):
                return f"local stand-in model '{self.stand_in}'{what}"
            return f"stand-in '{self.stand_in}'{what} answering for {self.model!r}: not the real model's vectors"
        via = f" via {self.backend}" if self.backend else ""
        return f"{self.model or 'unknown model'}{via}"


@dataclass
class SideInfo:
    """One side as the report shows it: its description and its size."""

    name: str
    description: SideDescription
    n_docs: int
    n_vectors: int
    dim: int
    chunked: bool
    ann: dict[str, Any] | None = None

    @property
    def bytes_per_vector_float32(self) -> int:
        return 4 * self.dim


@dataclass
class Sides:
    old: SideInfo
    new: SideInfo
    extra: list[SideInfo] = field(default_factory=list)

    def all(self) -> list[SideInfo]:
        return [self.old, self.new, *self.extra]


# --------------------------------------------------------------------------- measures

@dataclass
class MetricsRow:
    """One side against another on every judged metric (paired over the same queries)."""

    side: str
    vs: str
    stats: dict[str, PairedStats]


@dataclass
class JudgedMetrics:
    """Metrics with relevance judgments, for every side and each comparison with old."""

    n_judged: int
    names: list[str]
    trec_eval_measures: dict[str, str]
    means: dict[str, dict[str, float]]
    rows: list[MetricsRow]

    @property
    def headline(self) -> PairedStats:
        """new vs old on nDCG@10: the number a reader looks for first."""
        return self.rows[0].stats["ndcg@10"]


@dataclass
class Agreement:
    """Label-free agreement of two sides' result lists, averaged over the queries."""

    k: int
    rbo_p: float
    rbo_depth: int
    overlap_mean: float
    rbo_mean: float
    mean_abs_rank_shift: float | None
    dropped_mean: float
    top1_kept_rate: float
    overlap_histogram: dict[str, int]


@dataclass
class QueryRow:
    """One query's agreement (and, when judged, its metrics per side)."""

    qid: str
    text: str
    overlap: float = 0.0
    rbo: float = 0.0
    mean_abs_shift: float | None = None
    dropped: int = 0
    top1_kept: bool = False
    metrics: dict[str, dict[str, float]] | None = None  # side name -> metric -> value
    n_relevant: int | None = None


@dataclass
class ResultRow:
    """One result of one side for one query."""

    rank: int
    id: str
    score: float
    rel: int | None  # judged relevance (None: no judgments for this query set)
    in_other: bool  # also in the other side's top-k
    text: str | None


@dataclass
class Example:
    """A query shown side by side."""

    qid: str
    text: str
    overlap: float
    rbo: float
    sides: dict[str, list[ResultRow]]
    metrics: dict[str, dict[str, float]] | None = None


@dataclass
class SweepRow:
    """The new side truncated to ``dims`` (Matryoshka) and re-normalised."""

    dims: int
    full: bool
    bytes_float32: int
    bytes_int8: int
    bytes_binary: int
    overlap_vs_old: float
    overlap_vs_full: float
    rbo_vs_full: float
    search_s: float
    metrics: dict[str, float] | None = None
    precision: str = "float32"  # how the swept vectors were stored (``compare --precisions``)
    bytes: int | None = None  # bytes per vector at that precision


@dataclass
class Sweep:
    rows: list[SweepRow]
    skipped: list[int] = field(default_factory=list)  # larger than the new side's width
    skipped_reason: str | None = None


@dataclass
class AnnCheck:
    """A built ANN index measured against exact search on the same query vectors."""

    description: dict[str, Any]
    k: int
    depth: int
    recall_at_k: float
    recall_at_depth: float
    search_s: float
    exact_search_s: float
    metrics: dict[str, float] | None = None


@dataclass
class GateResult:
    """One ``--fail-if`` gate checked against the report."""

    gate: str
    side: str
    metric: str
    value: float
    threshold: float
    op: str
    failed: bool
    message: str


# --------------------------------------------------------------------------- the report

@dataclass
class CompareReport:
    """Everything one comparison measured; ``to_dict()`` is the JSON output."""

    title: str
    created: str
    config: dict[str, Any]
    sides: Sides
    n_queries: int
    metrics: JudgedMetrics | None
    agreement: Agreement
    extra_agreement: dict[str, Agreement] | None
    per_query: list[QueryRow]
    examples: list[Example]
    matryoshka: Sweep | None
    ann: dict[str, AnnCheck] | None
    timings: dict[str, Any]
    gates: list[GateResult] = field(default_factory=list)
    report_version: int = REPORT_VERSION
    #: Label-free evidence and the one verdict drawn from the strongest evidence (``report.evidence``).
    knownitem: KnownItemResult | None = None
    judged: JudgedResult | None = None
    ppi: PPIResult | None = None
    verdict: Verdict | None = None

    @property
    def k(self) -> int:
        return int(self.config["k"])

    def side_names(self) -> list[str]:
        return [s.name for s in self.sides.all()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (version 1's keys kept where they existed)."""

        def side(s: SideInfo) -> dict[str, Any]:
            d = asdict(s)
            d["description"]["identity"] = s.description.identity
            d["description"]["model_identity"] = s.description.identity  # version 1 name
            d["bytes_per_vector_float32"] = s.bytes_per_vector_float32
            return d

        metrics = None
        if self.metrics is not None:
            m = self.metrics
            metrics = {"n_judged": m.n_judged, "names": m.names, "trec_eval_measures": m.trec_eval_measures,
                       "means": m.means, "headline": {"metric": "ndcg@10", **m.headline.as_dict()},
                       "rows": [{"side": r.side, "vs": r.vs, "stats": {k: v.as_dict() for k, v in r.stats.items()}}
                                for r in m.rows]}
        sweep = None
        if self.matryoshka is not None:
            sweep = []
            for r in self.matryoshka.rows:
                d = asdict(r)
                d.update(d.pop("metrics") or {})  # version 1: metric values beside the row's fields
                sweep.append(d)
            if self.matryoshka.skipped:
                sweep.append({"dims": self.matryoshka.skipped, "skipped": self.matryoshka.skipped_reason})
        ann = None
        if self.ann is not None:
            ann = {}
            for name, a in self.ann.items():
                ann[name] = {"description": a.description, f"recall@{a.k}_vs_exact": a.recall_at_k,
                             f"recall@{a.depth}_vs_exact": a.recall_at_depth, "search_s": a.search_s,
                             "exact_search_s": a.exact_search_s}
                if a.metrics is not None:
                    ann[name]["metrics"] = a.metrics
        per_query = []
        for q in self.per_query:
            d = asdict(q)
            for key in ("metrics", "n_relevant"):
                if d[key] is None:
                    del d[key]
            per_query.append(d)
        examples = []
        for ex in self.examples:
            d = asdict(ex)
            if d["metrics"] is None:
                del d["metrics"]
            examples.append(d)
        return {
            "report_version": self.report_version,
            "verdict": self.verdict.as_dict() if self.verdict is not None else None,
            "title": self.title,
            "created": self.created,
            "config": self.config,
            "sides": {"old": side(self.sides.old), "new": side(self.sides.new),
                      "extra": [side(s) for s in self.sides.extra]},
            "n_queries": self.n_queries,
            "metrics": metrics,
            "agreement": asdict(self.agreement),
            "extra_agreement": ({n: asdict(a) for n, a in self.extra_agreement.items()}
                                if self.extra_agreement else None),
            "per_query": per_query,
            "examples": examples,
            "matryoshka": sweep,
            "ann": ann,
            "gates": [asdict(g) for g in self.gates],
            "knownitem": self.knownitem.as_dict() if self.knownitem is not None else None,
            "judged": self.judged.as_dict() if self.judged is not None else None,
            "ppi": self.ppi.as_dict() if self.ppi is not None else None,
            "timings": self.timings,
        }
