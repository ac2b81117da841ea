"""Read the evaluation inputs of ``compare``: queries, relevance judgments, corpus text.

Accepted layouts (what teams actually have):

* queries: JSONL (``{"_id"|"id"|"qid": ..., "text"|"query": ...}``), CSV or TSV with a
  header naming an id and a text column, or a BEIR folder (``queries.jsonl``).
* judgments: BEIR qrels TSV (``query-id corpus-id score`` with a header) or TREC qrels
  (``qid iteration docid rel``, whitespace separated, no header).
* corpus (to show result text and to embed a side from a model): BEIR ``corpus.jsonl``
  (``_id``, ``title``, ``text``); a document's text is ``title + " " + text``, as MTEB does.

Every id becomes a ``str``. A malformed line raises ``InputError`` naming file and line; a
UTF-8 byte-order mark (what Windows tools write) is accepted, invalid UTF-8 is reported with
its line.
"""

from __future__ import annotations

import csv
import io
import json
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.errors import InputError

_ID_KEYS = ("_id", "id", "qid", "query_id", "query-id", "doc_id", "docid")
_QTEXT_KEYS = ("text", "query", "question")


@dataclass(frozen=True)
class Query:
    """One query to run against both indexes."""

    id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Document ids and their text (``title + " " + body`` when there is a title), in file order.

    ``titles`` and ``bodies`` keep the two apart when the source had titles: the known-item
    guard takes a title (or a sentence of the body) out of its document, so it must know
    where one ends and the other begins.
    """

    ids: list[str]
    texts: list[str]
    titles: list[str] | None = None
    bodies: list[str] | None = None

    def lookup(self) -> dict[str, str]:
        return dict(zip(self.ids, self.texts))

    def source_docs(self) -> Iterator[Any]:
        """The documents as the known-item guard reads them (``knownitem.SourceDoc``)."""
        from migrate.report.knownitem import SourceDoc

        if self.titles is None or self.bodies is None:
            for i, t in zip(self.ids, self.texts):
                yield SourceDoc(i, t)
            return
        for i, body, title in zip(self.ids, self.bodies, self.titles):
            yield SourceDoc(i, body, title or None)


def _pick(row: dict, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if k in row and row[k] is not None and str(row[k]) != "":
            return str(row[k])
    return None


def read_text(path: Path) -> str:
    """The file as text: UTF-8 with or without a byte-order mark; invalid bytes name their line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})", hint="check the path") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: invalid UTF-8 (byte 0x{data[exc.start]:02x})",
                         hint="save the file as UTF-8") from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with io.StringIO(read_text(path)) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})", hint="one JSON object per line") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: expected a JSON object", hint="one JSON object per line")
            yield n, obj


def _beir_file(path: Path, name: str) -> Path:
    if path.is_dir():
        cand = path / name
        if not cand.exists():
            raise InputError(f"{path} is a folder without {name}", hint="point at the file or a BEIR dataset folder")
        return cand
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="check the path")
    return path


def read_queries(path: Path | str, *, only: set[str] | None = None) -> list[Query]:
    """Queries from JSONL/CSV/TSV or a BEIR folder; ``only`` keeps those ids (e.g. the qrels split)."""
    path = _beir_file(Path(path), "queries.jsonl")
    out: list[Query] = []
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with io.StringIO(read_text(path), newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if not any(k in fields for k in _ID_KEYS) or not any(k in fields for k in _QTEXT_KEYS):
                raise InputError(
                    f"{path}: header must name an id column and a text column",
                    hint=f"e.g. 'id{',' if suffix == '.csv' else chr(9)}text'; got {reader.fieldnames}",
                )
            for n, raw in enumerate(reader, 2):
                row = {(k or "").strip().lower(): v for k, v in raw.items()}
                qid, text = _pick(row, _ID_KEYS), _pick(row, _QTEXT_KEYS)
                if qid is None or text is None:
                    raise InputError(f"{path}:{n}: row without id or text", hint="fill both columns")
                out.append(Query(qid, text))
    else:
        for n, obj in _jsonl(path):
            qid, text = _pick(obj, _ID_KEYS), _pick(obj, _QTEXT_KEYS)
            if qid is None or text is None:
                raise InputError(f"{path}:{n}: query without id or text", hint='use {"_id": ..., "text": ...}')
            out.append(Query(qid, text))
    seen: set[str] = set()
    for q in out:
        if q.id in seen:
            raise InputError(f"{path}: duplicate query id {q.id!r}", hint="query ids must be unique")
        seen.add(q.id)
    if only is not None:
        out = [q for q in out if q.id in only]
    if not out:
        raise InputError(f"{path}: no queries to run", hint="check the file, or that its ids match the judgments")
    return out


def read_qrels(path: Path | str, *, split: str = "test") -> dict[str, dict[str, int]]:
    """Judgments as ``{query_id: {doc_id: relevance}}`` from BEIR TSV or TREC qrels.

    A BEIR folder resolves to ``qrels/<split>.tsv``.
    """
    path = Path(path)
    if path.is_dir():
        path = _beir_file(path / "qrels" if (path / "qrels").is_dir() else path, f"{split}.tsv")
    elif not path.exists():
        raise InputError(f"{path} does not exist", hint="check the --qrels path")
    qrels: dict[str, dict[str, int]] = {}
    lines = read_text(path).splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if n == 1 and parts and not _is_int(parts[-1]):
            continue  # header, e.g. "query-id corpus-id score"
        if len(parts) == 3:
            qid, did, rel = parts
        elif len(parts) == 4:
            qid, _, did, rel = parts  # TREC: qid iter docid rel
        else:
            raise InputError(f"{path}:{n}: expected 3 (BEIR) or 4 (TREC) fields, got {len(parts)}",
                             hint="BEIR: 'query-id<TAB>corpus-id<TAB>score'; TREC: 'qid 0 docid rel'")
        if not _is_int(rel):
            raise InputError(f"{path}:{n}: relevance {rel!r} is not an integer", hint="use graded integer labels")
        qrels.setdefault(qid, {})[did] = int(rel)
    if not qrels:
        raise InputError(f"{path}: no judgments found", hint="check the file format")
    return qrels


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def read_corpus(path: Path | str) -> Corpus:
    """BEIR corpus (JSONL with ``_id``/``title``/``text``); text = title + ' ' + text."""
    path = _beir_file(Path(path), "corpus.jsonl")
    ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    bodies: list[str] = []
    for n, obj in _jsonl(path):
        did = _pick(obj, _ID_KEYS)
        if did is None:
            raise InputError(f"{path}:{n}: document without an id", hint='use {"_id": ..., "text": ...}')
        title = str(obj.get("title") or "")
        body = str(obj.get("text") or "")
        ids.append(did)
        texts.append(f"{title} {body}" if title else body)
        titles.append(title)
        bodies.append(body)
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: duplicate document ids", hint="document ids must be unique")
    return Corpus(ids, texts, titles, bodies)


# --------------------------------------------------------------------------- query logs

#: Keys that may hold a logged query's text (the first present wins).
_LOG_TEXT_KEYS = ("query", "text", "question", "q", "search", "search_query", "query_text")
#: What a report shows instead of a logged query's text unless ``--show-queries`` is given.
HIDDEN_QUERY = "(query text not shown: pass --show-queries to include it)"


@dataclass
class QueryLog:
    """Queries read from a log: deduplicated, perhaps sampled; counts for the report (no text)."""

    queries: list[Query]
    path: str
    read: int  # non-empty entries in the file
    unique: int  # after removing repeats (same text, case and spacing ignored)
    seed: int
    sample: int | None  # the sample size asked for (None: all)
    format: str
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "read": self.read, "unique": self.unique,
                "used": len(self.queries), "sample": self.sample, "seed": self.seed}


def _norm_query(text: str) -> str:
    return " ".join(text.split()).casefold()


def _log_order(seed: int, text: str) -> int:
    """A query's place in the seeded sample: a hash of (seed, text), so the sample does not depend on file order."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{text}".encode(), digest_size=8).digest(), "big")


def _log_entries(path: Path) -> tuple[str, Iterator[tuple[int, str | None, str]]]:
    """(format, entries (line, id or None, text)) of a query log: JSONL, CSV/TSV with a header, or plain text."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        def jsonl() -> Iterator[tuple[int, str | None, str]]:
            with io.StringIO(read_text(path)) as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})",
                                         hint='one query per line: {"query": "..."} or a JSON string') from None
                    if isinstance(obj, str):
                        yield n, None, obj
                        continue
                    if not isinstance(obj, dict):
                        raise InputError(f"{path}:{n}: expected a JSON object or string",
                                         hint='one query per line: {"query": "..."}')
                    text = _pick(obj, _LOG_TEXT_KEYS)
                    if text is None:
                        raise InputError(f"{path}:{n}: no query text (looked for {', '.join(_LOG_TEXT_KEYS)})",
                                         hint='e.g. {"query": "how do I reset my password"}')
                    yield n, _pick(obj, _ID_KEYS), text
        return "jsonl", jsonl()
    if suffix in (".csv", ".tsv"):
        def table() -> Iterator[tuple[int, str | None, str]]:
            with io.StringIO(read_text(path), newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                fields = [(f or "").strip().lower() for f in (reader.fieldnames or [])]
                if not any(k in fields for k in _LOG_TEXT_KEYS):
                    raise InputError(f"{path}: the header names no query column (looked for "
                                     f"{', '.join(_LOG_TEXT_KEYS)}; got {reader.fieldnames})",
                                     hint="add a header line such as 'query', or save the log as plain text, "
                                          "one query per line")
                for n, raw in enumerate(reader, 2):
                    row = {(k or "").strip().lower(): v for k, v in raw.items()}
                    text = _pick(row, _LOG_TEXT_KEYS)
                    if text is not None:
                        yield n, _pick(row, _ID_KEYS), text
        return suffix[1:], table()

    def plain() -> Iterator[tuple[int, str | None, str]]:
        for n, line in enumerate(read_text(path).splitlines(), 1):
            yield n, None, line
    return "text", plain()


def read_query_log(path: Path | str, *, sample: int | None = None, seed: int = 0) -> QueryLog:
    """Real queries from a log (see ``_log_entries``), repeats removed, ``sample`` of them drawn by ``seed``.

    A query without an id gets ``q-`` + a hash of its text, so the same query keeps its id
    across logs and runs. ``InputError`` (one line, naming the file) when nothing is left.
    """
    path = _beir_file(Path(path), "queries.jsonl")
    if sample is not None and sample < 1:
        raise InputError(f"--query-sample {sample} must be at least 1", hint="or leave it out to use every query")
    fmt, entries = _log_entries(path)
    seen: dict[str, Query] = {}
    ids: dict[str, int] = {}
    read = 0
    for n, qid, text in entries:
        if "\x00" in text:
            raise InputError(f"{path}:{n}: the query holds a NUL byte", hint="clean the log; NUL is never valid text")
        if not text.strip():
            continue
        read += 1
        key = _norm_query(text)
        if key in seen:
            continue
        qid = qid or "q-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        if qid in ids:
            raise InputError(f"{path}:{n}: query id {qid!r} was already used on line {ids[qid]} for another query",
                             hint="query ids must be unique; or drop the id column and let each query be "
                                  "identified by its text")
        ids[qid] = n
        seen[key] = Query(qid, " ".join(text.split()))
    if not seen:
        raise InputError(f"{path}: the query log holds no queries", hint="one query per line (plain text), a "
                         "JSONL file with a 'query' field, or a CSV with a 'query' column")
    queries = list(seen.values())
    if sample is not None and len(queries) > sample:
        queries = sorted(queries, key=lambda q: _log_order(seed, q.text))[:sample]
    return QueryLog(queries, str(path), read, len(seen), seed, sample, fmt)


# --------------------------------------------------------------------------- human labels

GRADES = (0, 1, 2, 3)


@dataclass(frozen=True)
class Label:
    """One human grade of a pooled (query, document) pair."""

    qid: str
    doc_id: str
    grade: int


def parse_grade(value: Any, where: str) -> int:
    """A grade 0-3 from a labels file cell (an int, or its text); ``InputError`` naming ``where`` otherwise."""
    given = value
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value not in GRADES:
        raise InputError(f"{where}: grade {given!r} is not 0, 1, 2 or 3",
                         hint="0 not relevant, 1 related, 2 partly answers, 3 answers; leave a pair out to skip it")
    return value


def read_labels(path: Path | str) -> dict[tuple[str, str], int]:
    """Human labels: JSONL (``qid``, ``doc_id``, ``grade``; what ``jina-migrate label`` writes) or CSV with
    those columns (``label --export`` / ``--import``). A later line for the same pair wins (a relabel);
    a row with an empty grade is a skipped pair. Every bad value is one ``InputError`` naming its line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--labels {path}: file not found", hint="label pairs first: jina-migrate label POOL --labels FILE")
    out: dict[tuple[str, str], int] = {}
    if path.suffix.lower() in (".csv", ".tsv"):
        with io.StringIO(read_text(path), newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            need = {"qid", "doc_id", "grade"}
            if not need <= set(reader.fieldnames or []):
                raise InputError(f"{path}: the header must name qid, doc_id and grade (got {reader.fieldnames})",
                                 hint="use the CSV that `jina-migrate label --export` wrote")
            for n, row in enumerate(reader, 2):
                if not (row.get("grade") or "").strip():
                    continue
                if not row.get("qid") or not row.get("doc_id"):
                    raise InputError(f"{path}:{n}: a row without qid or doc_id", hint="keep the exported columns")
                out[(row["qid"], row["doc_id"])] = parse_grade(row["grade"], f"{path}:{n}")
        return out
    for n, obj in _jsonl(path):
        if obj.get("skip") is True or obj.get("grade") is None and "grade" in obj:
            continue
        qid, did = obj.get("qid"), obj.get("doc_id")
        if not isinstance(qid, str) or not isinstance(did, str):
            raise InputError(f"{path}:{n}: a label needs string 'qid' and 'doc_id'",
                             hint='{"qid": "q1", "doc_id": "d7", "grade": 2}')
        out[(qid, did)] = parse_grade(obj.get("grade"), f"{path}:{n}")
    return out
