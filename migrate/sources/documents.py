"""Read the source documents (Parquet, JSONL, CSV/TSV) into one Arrow table.

The table has columns ``id`` (string) and ``text`` (string, title + " " + text when a
title field is given), plus ``vector`` when the file also holds stored vectors.
Every failure names the file and the record (line or row) and says how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
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


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown file type {path.suffix!r}",
                         hint="use .parquet, .jsonl or .csv/.tsv")
    return fmt


@dataclass
class Documents:
    """Documents keyed by string id, in file order."""

    path: Path
    table: pa.Table  # id: string, text: string, [vector: list<float32>]

    @property
    def ids(self) -> list[str]:
        return self.table.column("id").to_pylist()

    @property
    def texts(self) -> list[str]:
        return self.table.column("text").to_pylist()

    @property
    def has_vectors(self) -> bool:
        return "vector" in self.table.column_names

    def vectors(self) -> np.ndarray:
        return vectors_from_arrow(self.table.column("vector"), self.path)

    def __len__(self) -> int:
        return self.table.num_rows


#: Longest JSONL record accepted (bytes). A longer line is refused before it is read into memory:
#: no embedding model takes that much text, and a corrupt export can be one endless line.
MAX_JSONL_LINE = 64 * 1024 * 1024


def _read_jsonl(path: Path) -> pa.Table:
    """Parse JSONL line by line so a bad record is reported with its line number."""
    rows = []
    try:
        with open(path, "rb") as fh:
            lineno = 0
            while raw := fh.readline(MAX_JSONL_LINE + 1):
                lineno += 1
                if len(raw) > MAX_JSONL_LINE and not raw.endswith(b"\n"):
                    raise InputError(f"{path}:{lineno}: record is longer than {MAX_JSONL_LINE >> 20} MiB",
                                     hint="split or shorten that document; no embedding model reads that much text")
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start})",
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
                rows.append(obj)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not rows:
        raise InputError(f"{path}: no records found", hint="the file is empty")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: records have inconsistent field types ({first[:160]})") from None


def read_table(path: Path) -> pa.Table:
    """Read a whole file into Arrow, turning every reader failure into an InputError."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    fmt = detect_format(path)
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
            table.validate(full=True)  # e.g. strings that are not UTF-8 in a damaged file
            return table
        if fmt == "jsonl":
            return _read_jsonl(path)
        opts = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
        table = pacsv.read_csv(path, parse_options=opts,
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
        table.column_names  # noqa: B018 - header names are decoded lazily; a non-UTF-8 header fails here
        return table
    except InputError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read as {fmt} ({first})",
                         hint="check that the file is complete and of that type") from None


def _pick(table: pa.Table, wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: bool = True) -> str | None:
    names = table.column_names
    if wanted:
        if wanted not in names:
            raise InputError(f"{path}: no {what} field {wanted!r}", hint=f"fields are: {', '.join(names)}")
        return wanted
    for c in candidates:
        if c in names:
            return c
    if required:
        raise InputError(f"{path}: cannot find the {what} field",
                         hint=f"pass --{what}-field; fields are: {', '.join(names)}")
    return None


def vectors_from_arrow(col: pa.ChunkedArray | pa.Array, path: Path) -> np.ndarray:
    """Arrow list/fixed-size-list column -> float32 (n, d); rejects ragged, null and non-finite rows."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        bad = pc.indices_nonzero(pc.is_null(arr)).to_pylist()[:5]
        raise InputError(f"{path}: rows {bad} have no vector")
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        flat = arr.flatten().to_numpy(zero_copy_only=False)
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            bad = np.nonzero(lengths != lengths[0])[0][:5].tolist()
            raise InputError(f"{path}: vectors have different dimensions (rows {bad} differ from row 0's {lengths[0]})")
        d = int(lengths[0]) if len(lengths) else 0
        flat = arr.flatten().to_numpy(zero_copy_only=False)
    else:
        raise InputError(f"{path}: vector column has type {arr.type}, expected a list of floats")
    try:
        vecs = np.asarray(flat, dtype=np.float32).reshape(len(arr), d)
    except (TypeError, ValueError):
        raise InputError(f"{path}: vector values are not numbers") from None
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        bad = np.nonzero(~finite)[0][:5].tolist()
        raise InputError(f"{path}: rows {bad} hold NaN or infinite vector values",
                         hint="rebuild those vectors or drop the rows")
    return vecs


def open_documents(path: str | Path, id_field: str | None = None, text_field: str | None = None,
                   title_field: str | None = None, vector_field: str | None = None) -> Documents:
    """Read documents; ids become strings; title (if any) is joined to text with one space."""
    path = Path(path)
    return documents_from_table(read_table(path), path, id_field, text_field, title_field, vector_field)


def documents_from_table(table: pa.Table, path: Path, id_field: str | None = None, text_field: str | None = None,
                         title_field: str | None = None, vector_field: str | None = None) -> Documents:
    """Pick and normalise the id/text(/title/vector) fields of an already-read table."""
    idf = _pick(table, id_field, ID_CANDIDATES, "id", path)
    tf = _pick(table, text_field, TEXT_CANDIDATES, "text", path)
    ids = table.column(idf)
    if ids.null_count:
        bad = pc.indices_nonzero(pc.is_null(ids.combine_chunks())).to_pylist()[:5]
        raise InputError(f"{path}: records {bad} have no {idf!r}")
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type) or pa.types.is_integer(ids.type)):
        raise InputError(f"{path}: id field {idf!r} has type {ids.type}; ids must be strings or integers")
    ids = pc.cast(ids, pa.string())
    text = table.column(tf)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise InputError(f"{path}: text field {tf!r} has type {text.type}, expected strings")
    text = pc.fill_null(pc.cast(text, pa.string()), "")
    if title_field:
        if title_field not in table.column_names:
            raise InputError(f"{path}: no title field {title_field!r}", hint=f"fields are: {', '.join(table.column_names)}")
        title = pc.fill_null(pc.cast(table.column(title_field), pa.string()), "")
        joined = pc.binary_join_element_wise(title, text, " ")
        # No leading space when the title is empty.
        text = pc.if_else(pc.equal(pc.utf8_length(title), 0), text, joined)
    cols = {"id": ids, "text": text}
    vf = _pick(table, vector_field, VECTOR_CANDIDATES, "vector", path, required=bool(vector_field))
    if vf:
        cols["vector"] = table.column(vf)
    out = pa.table(cols)
    # Reject NUL bytes: they are almost always a broken export, and tokenizers drop them silently.
    has_nul = pc.match_substring(out.column("text"), "\x00")
    if pc.any(has_nul).as_py():
        bad = pc.filter(out.column("id"), has_nul).to_pylist()[:5]
        raise InputError(f"{path}: documents {bad} contain NUL bytes", hint="clean the export; NUL is never valid text")
    return Documents(path=path, table=out)
