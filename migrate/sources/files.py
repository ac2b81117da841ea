"""Documents from files, streamed: Parquet, JSONL and CSV/TSV.

A :class:`FileDocuments` source does two things:

* ``scan()`` walks the whole file once, in batches, and yields each record's id, text,
  *locator* and line (or row) number. It never holds more than one batch.
* ``read(locators)`` fetches the texts of a few records again by their locators, so a
  shard step reads only its own rows: Parquet rows by row group, JSONL and CSV records
  by the byte offset the scan recorded.

Every failure names the file and the record (``path:line`` or ``row N``) and says how to
fix it. The text of a record is ``title + " " + text`` when a title field is given.

A database destination also carries each record's other fields: ``payload_schema()`` gives
them one type each for the whole file (Parquet: its own types; CSV: text; JSONL: inferred over
every record with the engines' own rule, ``engines.payload.infer_schema``), and
``payload(locators)`` reads them, the text field exactly as the file holds it (no title).
Not carried: the id (the destination's key) and a column of old vectors.
"""

from __future__ import annotations

import abc
import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from migrate.errors import InputError

ID_CANDIDATES = ("id", "_id", "doc_id", "docid")
TEXT_CANDIDATES = ("text", "contents", "content", "body", "passage")
VECTOR_CANDIDATES = ("vector", "embedding", "emb")

FORMATS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "tsv",
}

#: Longest JSONL record accepted (bytes). A longer line is refused before it is read into memory:
#: no embedding model takes that much text, and a corrupt export can be one endless line.
MAX_JSONL_LINE = 64 * 1024 * 1024
BATCH_ROWS = 65_536
_BOM = b"\xef\xbb\xbf"
_SNIFF_DELIMITERS = ",;\t|"


def raw_lines(fh: io.BufferedReader, path: Path, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(line number from ``start``, byte offset, raw line) of a text file; a UTF-8 BOM at the start is skipped
    and a line longer than ``MAX_JSONL_LINE`` is refused before it is read whole."""
    fh.seek(start)
    pos = start
    if start == 0:
        if fh.read(3) == _BOM:
            pos = 3
        else:
            fh.seek(0)
    lineno = 0
    while raw := fh.readline(MAX_JSONL_LINE + 1):
        lineno += 1
        offset = pos
        pos += len(raw)
        if len(raw) > MAX_JSONL_LINE and not raw.endswith(b"\n"):
            raise InputError(f"{path}:{lineno}: line is longer than {MAX_JSONL_LINE >> 20} MiB",
                             hint="split or shorten that document; no embedding model reads that much text")
        yield lineno, offset, raw


def parse_json_record(raw: bytes, path: Path, lineno: int) -> dict:
    """One JSONL line as a dict; every problem names the file and the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line)",
                         hint="re-encode the file as UTF-8") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})",
                         hint="fix or remove that line") from None
    except RecursionError:
        raise InputError(f"{path}:{lineno}: JSON nested too deeply", hint="fix or remove that line") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
    if b"\\ud" in raw or b"\\uD" in raw:  # a \uD800-\uDFFF escape: a lone surrogate is no character
        for key, value in obj.items():
            if isinstance(value, str) and not encodable(value):
                raise InputError(f"{path}:{lineno}: {key!r} holds an invalid character (a lone UTF-16 "
                                 "surrogate escape such as \\ud800)",
                                 hint="fix the export: that escape does not encode a character")
    return obj


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown file type {path.suffix!r}", hint="use .parquet, .jsonl or .csv/.tsv")
    return fmt


def check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")


@dataclass(frozen=True)
class DocumentSpec:
    """Where the documents are and which fields hold what; small and picklable (travels to Ray workers)."""

    path: str
    id_field: str | None = None
    text_field: str | None = None
    title_field: str | None = None
    faiss_id_field: str | None = None
    delimiter: str | None = None


@dataclass
class DocBatch:
    """One batch of a scan: parallel columns, one entry per record (empty texts included)."""

    ids: list[str]
    texts: list[str]
    locs: np.ndarray  # int64: Parquet row, or byte offset of the JSONL line / CSV record
    lines: np.ndarray  # int64: 1-based line (JSONL/CSV) or 0-based row (Parquet), for messages
    faiss_ids: np.ndarray | None = None  # int64, from ``faiss_id_field``


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: What reading a damaged or foreign file can raise (pyarrow's errors; a name or string that is not UTF-8
#: is a UnicodeDecodeError, a ValueError).
READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def open_parquet(path: Path | str) -> pq.ParquetFile:
    """A user's Parquet file, opened; a damaged or foreign one is one ``InputError`` line."""
    try:
        pf = pq.ParquetFile(path)
        pf.schema_arrow  # noqa: B018 - decodes the column names: a damaged footer fails here, not later
        return pf
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read as parquet ({_first_line(exc)})",
                         hint="check that the file is complete and of that type") from None


@overload
def _pick(names: Sequence[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: Literal[True] = True, flag: str | None = None) -> str: ...


@overload
def _pick(names: Sequence[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: bool, flag: str | None = None) -> str | None: ...


def _pick(names: Sequence[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: bool = True, flag: str | None = None) -> str | None:
    """The field holding ``what``: ``wanted`` when given, else the first of ``candidates`` present (InputError
    when none is and it is ``required``)."""
    if wanted:
        if wanted not in names:
            raise InputError(f"{path}: no {what} field {wanted!r}", hint=f"fields are: {', '.join(names)}")
        return wanted
    for c in candidates:
        if c in names:
            return c
    if required:
        raise InputError(f"{path}: cannot find the {what} field",
                         hint=f"pass {flag or f'--{what}-field'}; fields are: {', '.join(map(str, names))}")
    return None


def _kind(value: Any) -> str:
    """How a JSON value reads in a message: 'a number', 'a list', ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({type(value).__name__})"
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _join_title(title: Any, text: Any) -> str:
    text = "" if text is None else text
    if title is None or title == "":
        return text
    return f"{title} {text}"


class FileDocuments:
    """A documents file read as a stream (see the module docstring)."""

    def __init__(self, spec: DocumentSpec) -> None:
        self.spec = spec
        self.path = Path(spec.path)
        check_readable(self.path)
        self.format = detect_format(self.path)
        self._reader: _Reader = {"parquet": _ParquetReader, "jsonl": _JsonlReader}.get(self.format, _CsvReader)(self)

    def describe(self) -> str:
        return str(self.path)

    def where(self, line: int) -> str:
        return self._reader.where(int(line))

    def scan(self, batch_rows: int = BATCH_ROWS) -> Iterator[DocBatch]:
        yield from self._reader.scan(batch_rows)

    def read(self, locs: np.ndarray, ids: Sequence[str] | None = None) -> list[str]:
        """Texts of the records at ``locs`` (as recorded by ``scan``), in that order (``ids`` are not needed)."""
        if len(locs) == 0:
            return []
        return self._reader.read(np.asarray(locs, dtype=np.int64))

    def payload_schema(self) -> pa.Schema:
        """Every field but the id (and old vectors), one type each for the whole file (module docstring)."""
        return self._reader.payload_schema()

    def payload(self, locs: np.ndarray) -> pa.Table:
        """Those fields of the records at ``locs``, in that order; the text as the file holds it."""
        return self._reader.payload(np.asarray(locs, dtype=np.int64))


def _old_vectors(name: str, t: pa.DataType) -> bool:
    """A column of the old index's vectors kept beside the documents: not payload of the new collection."""
    lists = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    return name in VECTOR_CANDIDATES and lists and (pa.types.is_floating(t.value_type)
                                                    or pa.types.is_integer(t.value_type))


class _Reader(abc.ABC):
    def __init__(self, src: FileDocuments) -> None:
        self.src = src
        self.path = src.path
        self.spec = src.spec

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    @abc.abstractmethod
    def scan(self, batch_rows: int) -> Iterator[DocBatch]:
        """Every record, in file order, ``batch_rows`` at a time."""

    @abc.abstractmethod
    def read(self, locs: np.ndarray) -> list[str]:
        """The texts of the records at ``locs``, in that order."""

    @abc.abstractmethod
    def payload_schema(self) -> pa.Schema:
        """The payload fields and their types (``FileDocuments.payload_schema``)."""

    @abc.abstractmethod
    def payload(self, locs: np.ndarray) -> pa.Table:
        """The payload of the records at ``locs``, in that order."""

    # record -> (id, text, faiss id), shared by JSONL and CSV
    def _faiss_id(self, value: Any, line: int) -> int:
        if isinstance(value, bool) or value is None or value == "":
            raise InputError(f"{self.where(line)}: no {self.spec.faiss_id_field!r} value",
                             hint="every document needs its FAISS id in that field")
        try:
            fid = int(value)
        except (TypeError, ValueError):
            raise InputError(f"{self.where(line)}: {self.spec.faiss_id_field!r} is {value!r}, not an integer FAISS id")
        if fid < 0 or fid >= 2 ** 63:
            raise InputError(f"{self.where(line)}: FAISS id {fid} is out of the int64 range FAISS uses")
        return fid


# --------------------------------------------------------------------------- Parquet

class _ParquetReader(_Reader):
    def __init__(self, src: FileDocuments) -> None:
        super().__init__(src)
        self.file = open_parquet(self.path)
        names = self.file.schema_arrow.names
        self.id_col = _pick(names, self.spec.id_field, ID_CANDIDATES, "id", self.path)
        self.text_col = _pick(names, self.spec.text_field, TEXT_CANDIDATES, "text", self.path)
        self.title_col = _pick(names, self.spec.title_field, (), "title", self.path, required=False) \
            if self.spec.title_field else None
        self.fid_col = _pick(names, self.spec.faiss_id_field, (), "FAISS id", self.path, flag="--faiss-id-field") \
            if self.spec.faiss_id_field else None
        self.columns = [c for c in (self.id_col, self.text_col, self.title_col, self.fid_col) if c]
        schema = self.file.schema_arrow
        check_id_type(self.path, self.id_col, schema.field(self.id_col).type)
        text_type = _value_type(schema.field(self.text_col).type)
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
            raise InputError(f"{self.path}: text field {self.text_col!r} has type {text_type}, expected strings")
        self.group_starts = np.cumsum([0] + [self.file.metadata.row_group(i).num_rows
                                             for i in range(self.file.num_row_groups)])

    def where(self, line: int) -> str:
        return f"{self.path}: row {line}"

    def _columns(self, batch: pa.RecordBatch | pa.Table, first_row: int) -> tuple[list[str], list[str], np.ndarray | None]:
        ids = _plain(batch.column(self.id_col))
        if ids.null_count:
            bad = pc.indices_nonzero(pc.is_null(ids)).to_pylist()[:5]
            rows = ", ".join(str(first_row + b) for b in bad)
            raise InputError(f"{self.path}: row{'s' if len(bad) > 1 else ''} {rows} (counting from 0) "
                             f"{'have' if len(bad) > 1 else 'has'} no {self.id_col!r}",
                             hint="give every row an id, or drop those rows")
        ids_s = pc.cast(ids, pa.string()).to_pylist()
        text = pc.fill_null(_plain(batch.column(self.text_col)), "").to_pylist()
        if self.title_col:
            titles = pc.cast(_plain(batch.column(self.title_col)), pa.string()).to_pylist()
            text = [_join_title(t, x) for t, x in zip(titles, text)]
        fids = None
        if self.fid_col:
            col = _plain(batch.column(self.fid_col))
            if not pa.types.is_integer(col.type) or col.null_count:
                raw = col.to_pylist()
                fids = np.array([self._faiss_id(v, first_row + i) for i, v in enumerate(raw)], dtype=np.int64)
            else:
                fids = col.to_numpy(zero_copy_only=False).astype(np.int64)
                if (fids < 0).any():
                    i = int(np.nonzero(fids < 0)[0][0])
                    raise InputError(f"{self.where(first_row + i)}: FAISS id {fids[i]} is negative")
        return ids_s, text, fids

    def scan(self, batch_rows: int) -> Iterator[DocBatch]:
        row = 0
        try:
            for batch in self.file.iter_batches(batch_size=batch_rows, columns=self.columns):
                batch.validate(full=True)  # e.g. strings that are not UTF-8 in a damaged file
                ids, texts, fids = self._columns(batch, row)
                locs = np.arange(row, row + batch.num_rows, dtype=np.int64)
                yield DocBatch(ids, texts, locs, locs, fids)
                row += batch.num_rows
        except InputError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: cannot read as parquet near row {row} ({_first_line(exc)})",
                             hint="check that the file is complete and of that type") from None

    def read(self, locs: np.ndarray) -> list[str]:
        group_of = np.searchsorted(self.group_starts, locs, side="right") - 1
        groups = np.unique(group_of)
        table = self.file.read_row_groups(groups.tolist(), columns=self.columns)
        sizes = np.diff(self.group_starts)[groups]
        base = dict(zip(groups.tolist(), (np.cumsum(sizes) - sizes).tolist()))  # first position of each group read
        pos = np.array([base[g] for g in group_of.tolist()], dtype=np.int64) + (locs - self.group_starts[group_of])
        _, texts, _ = self._columns(table.take(pa.array(pos)), int(locs[0]))
        return texts

    def payload_schema(self) -> pa.Schema:
        schema = self.file.schema_arrow
        return pa.schema([pa.field(f.name, _value_type(f.type)) for f in schema
                          if f.name != self.id_col and not _old_vectors(f.name, _value_type(f.type))])

    def payload(self, locs: np.ndarray) -> pa.Table:
        schema = self.payload_schema()
        if len(locs) == 0:
            return schema.empty_table()
        group_of = np.searchsorted(self.group_starts, locs, side="right") - 1
        groups = np.unique(group_of)
        table = self.file.read_row_groups(groups.tolist(), columns=schema.names)
        sizes = np.diff(self.group_starts)[groups]
        base = dict(zip(groups.tolist(), (np.cumsum(sizes) - sizes).tolist()))
        pos = np.array([base[g] for g in group_of.tolist()], dtype=np.int64) + (locs - self.group_starts[group_of])
        rows = table.take(pa.array(pos))
        return pa.table([_plain(rows.column(f.name)) for f in schema], schema=schema)


def _witness(kinds: dict[type, Any], value: Any) -> None:
    """Remember one value per kind (and, for lists, one element per kind inside them)."""
    if isinstance(value, list):
        inner = kinds.setdefault(list, [])
        for x in value:
            if all(type(y) is not type(x) for y in inner):
                inner.append(x)
    else:
        kinds.setdefault(type(value), value)


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def check_id_type(path: Path | str, name: str, arrow_type: pa.DataType) -> None:
    """Ids are strings or integers (dictionary-encoded or not), in documents and in vector datasets alike:
    a binary or float column is refused, never cast into ids."""
    t = _value_type(arrow_type)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise InputError(f"{path}: id field {name!r} has type {t}; ids must be strings or integers")


def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array; dictionary-encoded columns (common from Parquet writers) decoded."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


# --------------------------------------------------------------------------- JSONL

class _JsonlReader(_Reader):
    """Line by line, so each record is reported with its line number and located by its byte offset."""

    def __init__(self, src: FileDocuments) -> None:
        super().__init__(src)
        self.fields: tuple[str, str] | None = None
        self.id_kind: tuple[type, int] | None = None  # (int or str, first line) - mixed kinds are refused
        self._payload_schema: pa.Schema | None = None

    def _records(self, fh: io.BufferedReader, start: int = 0) -> Iterator[tuple[int, int, dict]]:
        """(line number, byte offset, record) for each non-blank line from ``start``."""
        for lineno, offset, raw in raw_lines(fh, self.path, start):
            if raw.strip():
                yield lineno, offset, parse_json_record(raw, self.path, lineno)

    def _parse(self, raw: bytes, lineno: int) -> dict:
        return parse_json_record(raw, self.path, lineno)

    def _fields(self, obj: dict, lineno: int) -> tuple[str, str]:
        if self.fields is None:
            names = list(obj)
            idf = _pick(names, self.spec.id_field, ID_CANDIDATES, "id", self.path)
            tf = _pick(names, self.spec.text_field, TEXT_CANDIDATES, "text", self.path)
            self.fields = (idf, tf)
        return self.fields

    def _record(self, obj: dict, lineno: int) -> tuple[str, str, Any]:
        idf, tf = self._fields(obj, lineno)
        if idf not in obj or obj[idf] is None:
            raise InputError(f"{self.path}:{lineno}: record has no {idf!r}", hint="every record needs an id")
        raw_id = obj[idf]
        kind = int if isinstance(raw_id, int) and not isinstance(raw_id, bool) else str if isinstance(raw_id, str) else None
        if kind is None:
            raise InputError(f"{self.path}:{lineno}: id {raw_id!r} is {_kind(raw_id)}; ids must be strings or integers")
        if self.id_kind is None:
            self.id_kind = (kind, lineno)
        elif self.id_kind[0] is not kind:
            first_kind, first_line = self.id_kind
            raise InputError(f"{self.path}:{lineno}: mixed id types: id {raw_id!r} is a "
                             f"{'number' if kind is int else 'string'}, but line {first_line} has a "
                             f"{'number' if first_kind is int else 'string'}",
                             hint="make every id a string (\"1\") or every id a number (1)")
        text = obj.get(tf)
        if text is not None and not isinstance(text, str):
            raise InputError(f"{self.path}:{lineno}: {tf!r} is {_kind(text)}, expected a string",
                             hint="texts must be JSON strings")
        if self.spec.title_field:
            if self.spec.title_field not in obj and lineno == self.id_kind[1]:
                raise InputError(f"{self.path}: no title field {self.spec.title_field!r}",
                                 hint=f"fields are: {', '.join(obj)}")
            title = obj.get(self.spec.title_field)
            text = _join_title(None if title is None else str(title), text)
        fid = None
        if self.spec.faiss_id_field:
            fid = self._faiss_id(obj.get(self.spec.faiss_id_field), lineno)
        return str(raw_id), text or "", fid

    def _open(self) -> io.BufferedReader:
        try:
            return open(self.path, "rb")  # noqa: SIM115 - closed by the callers' with-blocks
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc.strerror})") from None

    def scan(self, batch_rows: int) -> Iterator[DocBatch]:
        ids: list[str] = []
        texts: list[str] = []
        locs: list[int] = []
        lines: list[int] = []
        fids: list[int] = []
        any_record = False
        with self._open() as fh:
            for lineno, offset, obj in self._records(fh):
                any_record = True
                doc_id, text, fid = self._record(obj, lineno)
                ids.append(doc_id)
                texts.append(text)
                locs.append(offset)
                lines.append(lineno)
                if fid is not None:
                    fids.append(fid)
                if len(ids) >= batch_rows:
                    yield self._batch(ids, texts, locs, lines, fids)
                    ids, texts, locs, lines, fids = [], [], [], [], []
        if not any_record:
            raise InputError(f"{self.path}: no records found", hint="the file is empty")
        if ids:
            yield self._batch(ids, texts, locs, lines, fids)

    def _batch(self, ids, texts, locs, lines, fids) -> DocBatch:
        return DocBatch(ids, texts, np.array(locs, np.int64), np.array(lines, np.int64),
                        np.array(fids, np.int64) if self.spec.faiss_id_field else None)

    def read(self, locs: np.ndarray) -> list[str]:
        out = []
        with self._open() as fh:
            if self.fields is None:  # the first record names the fields, as in the scan
                first = next(self._records(fh), None)
                if first is not None:
                    self._fields(first[2], first[0])
            for offset in locs.tolist():
                fh.seek(offset)
                raw = fh.readline(MAX_JSONL_LINE + 1)
                if not raw.strip():
                    raise InputError(f"{self.path}: no record at byte {offset}",
                                     hint="the file changed since the run was planned; rerun to re-plan")
                out.append(self._record_text(self._parse(raw, -1)))
        return out

    def payload_schema(self) -> pa.Schema:
        """Inferred over every record: the same type rule as for a foreign collection's payload, fed one
        witness value per kind seen (the rule depends only on the kinds), so memory stays per field."""
        if self._payload_schema is None:
            from migrate.engines.payload import infer_schema

            witnesses: dict[str, dict[type, Any]] = {}
            with self._open() as fh:
                for lineno, _, obj in self._records(fh):
                    idf, _ = self._fields(obj, lineno)
                    for k, v in obj.items():
                        if k != idf:
                            _witness(witnesses.setdefault(k, {}), v)
            rows = [{k: v} for k, kinds in witnesses.items() for v in kinds.values()]
            schema = infer_schema(rows)
            self._payload_schema = pa.schema([f for f in schema if not _old_vectors(f.name, f.type)])
        return self._payload_schema

    def payload(self, locs: np.ndarray) -> pa.Table:
        from migrate.engines.payload import decode

        schema = self.payload_schema()
        rows = []
        with self._open() as fh:
            for offset in locs.tolist():
                fh.seek(offset)
                raw = fh.readline(MAX_JSONL_LINE + 1)
                if not raw.strip():
                    raise InputError(f"{self.path}: no record at byte {offset}",
                                     hint="the file changed since the run was planned; rerun to re-plan")
                rows.append(self._parse(raw, -1))
        return pa.table(decode(rows, schema, where=f"{self.path}: "), schema=schema)

    def _record_text(self, obj: dict) -> str:
        _, tf = self.fields  # type: ignore[misc]
        text = obj.get(tf)
        if self.spec.title_field:
            title = obj.get(self.spec.title_field)
            text = _join_title(None if title is None else str(title), text)
        return text or ""


# --------------------------------------------------------------------------- CSV / TSV

class _CsvReader(_Reader):
    """Python's csv module over raw lines, so a record's byte offset and line are known even when a
    quoted value spans several lines. Every value is a string (an id ``007`` stays ``007``)."""

    def __init__(self, src: FileDocuments) -> None:
        super().__init__(src)
        self.delimiter = self._delimiter()
        with self._open() as fh:
            header = next(self._records(fh, 0, limit=1), None)
        if header is None:
            raise InputError(f"{self.path}: no records found", hint="the file is empty")
        self.header = names = header[2]
        if len(names) == 1:  # one field: the delimiter is probably another one
            other = next((d for d in _SNIFF_DELIMITERS if d != self.delimiter and d in names[0]), None)
            if other is not None:
                raise InputError(f"{self.path}:1: the header is one field ({names[0][:60]!r}) with "
                                 f"{self.delimiter!r} as the delimiter",
                                 hint=f"pass --delimiter {other!r}" if other != "\t" else "pass --delimiter '\\t'")
        self.idx_id = names.index(_pick(names, self.spec.id_field, ID_CANDIDATES, "id", self.path))
        self.idx_text = names.index(_pick(names, self.spec.text_field, TEXT_CANDIDATES, "text", self.path))
        self.idx_title = names.index(_pick(names, self.spec.title_field, (), "title", self.path)) \
            if self.spec.title_field else None
        self.idx_fid = names.index(_pick(names, self.spec.faiss_id_field, (), "FAISS id", self.path,
                                         flag="--faiss-id-field")) if self.spec.faiss_id_field else None

    def _delimiter(self) -> str:
        if self.spec.delimiter:
            d = {"\\t": "\t", "tab": "\t"}.get(self.spec.delimiter, self.spec.delimiter)
            if len(d) != 1 or d in "\r\n\"":
                raise InputError(f"--delimiter {self.spec.delimiter!r} must be one character", hint="e.g. ';' or '\\t'")
            return d
        if self.src.format == "tsv":
            return "\t"
        with self._open() as fh:
            head = fh.read(64 * 1024)
        first = head.removeprefix(_BOM).decode("utf-8", "replace").split("\n", 1)[0]
        # The header decides: the candidate that splits it into the most fields (',' on a tie).
        counts = {d: first.count(d) for d in _SNIFF_DELIMITERS}
        best = max(counts, key=lambda d: (counts[d], d == ","))
        return best if counts[best] else ","

    def _open(self) -> io.BufferedReader:
        try:
            return open(self.path, "rb")  # noqa: SIM115 - closed by the callers' with-blocks
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc.strerror})") from None

    def _lines(self, fh: io.BufferedReader, start: int) -> Iterator[tuple[int, int, str]]:
        """(line number, byte offset, decoded line) from byte ``start`` (line numbers count from there)."""
        for lineno, offset, raw in raw_lines(fh, self.path, start):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{self.path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line)",
                                 hint="re-encode the file as UTF-8") from None
            yield lineno, offset, line

    def _records(self, fh: io.BufferedReader, start: int, limit: int | None = None
                 ) -> Iterator[tuple[int, int, list[str]]]:
        """(first line, byte offset, fields) of each non-blank record from byte ``start``.

        csv.reader pulls lines one at a time and never reads ahead of the record it returns, so the
        first line pulled after a record was returned starts the next record.
        """
        pending: tuple[int, int] | None = None

        def feed() -> Iterator[str]:
            nonlocal pending
            for lineno, offset, line in self._lines(fh, start):
                if pending is None:
                    pending = (lineno, offset)
                yield line

        reader = csv.reader(feed(), delimiter=self.delimiter)
        n = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                where = pending[0] if pending else "?"
                raise InputError(f"{self.path}:{where}: cannot parse as CSV ({exc})",
                                 hint="check the quoting of that record") from None
            assert pending is not None
            lineno, offset = pending
            pending = None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield lineno, offset, row
            n += 1
            if limit is not None and n >= limit:
                return

    def _text(self, row: list[str]) -> str:
        text = row[self.idx_text]
        return _join_title(row[self.idx_title], text) if self.idx_title is not None else text

    def scan(self, batch_rows: int) -> Iterator[DocBatch]:
        ids: list[str] = []
        texts: list[str] = []
        locs: list[int] = []
        lines: list[int] = []
        fids: list[int] = []
        width = len(self.header)
        with self._open() as fh:
            records = self._records(fh, 0)
            next(records)  # the header
            for lineno, offset, row in records:
                if len(row) != width:
                    raise InputError(f"{self.path}:{lineno}: {len(row)} fields, the header has {width}",
                                     hint=f"check the quoting, or the delimiter ({self.delimiter!r}; pass --delimiter)")
                if row[self.idx_id] == "":
                    raise InputError(f"{self.path}:{lineno}: record has no {self.header[self.idx_id]!r}",
                                     hint="every record needs an id")
                ids.append(row[self.idx_id])
                texts.append(self._text(row))
                locs.append(offset)
                lines.append(lineno)
                if self.idx_fid is not None:
                    fids.append(self._faiss_id(row[self.idx_fid], lineno))
                if len(ids) >= batch_rows:
                    yield self._batch(ids, texts, locs, lines, fids)
                    ids, texts, locs, lines, fids = [], [], [], [], []
        if ids:
            yield self._batch(ids, texts, locs, lines, fids)

    def _batch(self, ids, texts, locs, lines, fids) -> DocBatch:
        return DocBatch(ids, texts, np.array(locs, np.int64), np.array(lines, np.int64),
                        np.array(fids, np.int64) if self.idx_fid is not None else None)

    def read(self, locs: np.ndarray) -> list[str]:
        out = []
        with self._open() as fh:
            for offset in locs.tolist():
                row = next(self._records(fh, offset, limit=1), None)
                if row is None:
                    raise InputError(f"{self.path}: no record at byte {offset}",
                                     hint="the file changed since the run was planned; rerun to re-plan")
                out.append(self._text(row[2]))
        return out

    def payload_schema(self) -> pa.Schema:
        """Every column but the id, as text (CSV has no types: an id ``007`` or a price ``1.50`` stays as written)."""
        return pa.schema([pa.field(name, pa.string()) for i, name in enumerate(self.header) if i != self.idx_id])

    def payload(self, locs: np.ndarray) -> pa.Table:
        keep = [i for i in range(len(self.header)) if i != self.idx_id]
        cols: list[list[str]] = [[] for _ in keep]
        with self._open() as fh:
            for offset in locs.tolist():
                row = next(self._records(fh, offset, limit=1), None)
                if row is None or len(row[2]) != len(self.header):
                    raise InputError(f"{self.path}: no record at byte {offset}",
                                     hint="the file changed since the run was planned; rerun to re-plan")
                for c, i in zip(cols, keep):
                    c.append(row[2][i])
        return pa.table(cols, schema=self.payload_schema())
