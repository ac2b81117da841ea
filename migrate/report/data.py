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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    """Document ids and their text, in file order."""

    ids: list[str]
    texts: list[str]

    def lookup(self) -> dict[str, str]:
        return dict(zip(self.ids, self.texts))


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
    for n, obj in _jsonl(path):
        did = _pick(obj, _ID_KEYS)
        if did is None:
            raise InputError(f"{path}:{n}: document without an id", hint='use {"_id": ..., "text": ...}')
        title = str(obj.get("title") or "")
        body = str(obj.get("text") or "")
        ids.append(did)
        texts.append(f"{title} {body}" if title else body)
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: duplicate document ids", hint="document ids must be unique")
    return Corpus(ids, texts)
