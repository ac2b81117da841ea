"""The old (v2) index, whatever file it came from.

Planning needs only *which documents the index holds*: :func:`read_old_keys` returns the
document id (and the FAISS int64 id) of every stored vector, without the vectors.
``compare`` and ``search`` need the vectors too: :func:`open_old_index`.

A FAISS file's int64 ids map to document ids through an id-map file (``--id-map``),
through a documents column (``--faiss-id-field``, matched by the planning scan), by
their decimal string, or by row order when the index has no ids. A Parquet/JSONL vector
dataset holds document ids itself.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.errors import InputError
from migrate.sources.faiss_index import read_faiss
from migrate.sources.files import (_BOM, ID_CANDIDATES, READ_ERRORS, TEXT_CANDIDATES, VECTOR_CANDIDATES, _first_line,
                                   check_id_type, check_readable, detect_format, open_parquet)
from migrate.sources.old_types import OldIndex, OldIndexSpec, OldKeys

FAISS_SUFFIXES = {".faiss", ".index", ".idx", ".bin"}
ID_MAP_FAISS_CANDIDATES = ("faiss_id", "int_id", "index_id", "vector_id")
ID_MAP_ID_CANDIDATES = ("id", "doc_id", "_id", "docid")


def _sample(values: Sequence, n: int = 5) -> str:
    shown = ", ".join(str(v) for v in list(values)[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


# --------------------------------------------------------------------------- id map

def read_id_map(path: Path | str, faiss_field: str | None = None, id_field: str | None = None) -> pa.Table:
    """An id-map file as a table ``faiss_id`` (int64), ``id`` (string); every problem names the map and the row."""
    path = Path(path)
    check_readable(path)
    fmt = detect_format(path)
    try:
        if fmt == "parquet":
            table = open_parquet(path).read()  # the documents reader's checks: one verdict per file
        elif fmt == "jsonl":
            table = _read_jsonl_strings(path)
        else:
            table = _read_csv_strings(path, "\t" if fmt == "tsv" else ",")
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the id map ({_first_line(exc)})") from None
    names = table.column_names
    fid = faiss_field or next((c for c in ID_MAP_FAISS_CANDIDATES if c in names), None)
    did = id_field or next((c for c in ID_MAP_ID_CANDIDATES if c in names and c != fid), None)
    for given, flag in ((faiss_field, "--id-map-faiss-field"), (id_field, "--id-map-id-field")):
        if given and given not in names:
            raise InputError(f"{path}: id map has no column {given!r} ({flag})", hint=f"found: {', '.join(names)}")
    if fid is None or did is None:
        raise InputError(f"{path}: id map needs a FAISS id column and a document id column",
                         hint=f"name them faiss_id and id, or pass --id-map-faiss-field/--id-map-id-field; "
                              f"found: {', '.join(names)}")
    fcol = table.column(fid).combine_chunks()
    dcol = table.column(did).combine_chunks()
    for col, name in ((fcol, fid), (dcol, did)):
        if col.null_count:
            row = pc.indices_nonzero(pc.is_null(col)).to_pylist()[0]
            raise InputError(f"{path}: row {row} of the id map has no {name!r}", hint="every row needs both ids")
    try:
        fids = pc.cast(fcol, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = fcol.to_pylist()
        row = next(i for i, v in enumerate(values) if not _is_int(v))
        raise InputError(f"{path}: row {row}: faiss_id {values[row]!r} is not an integer") from None
    ids = pc.cast(dcol, pa.string())
    _refuse_duplicates(path, "FAISS id", pa.array(fids))
    _refuse_duplicates(path, "document id", ids)
    return pa.table({"faiss_id": pa.array(fids, pa.int64()), "id": ids})


def _is_int(v: object) -> bool:
    try:
        int(str(v))
        return True
    except ValueError:
        return False


def _refuse_duplicates(path: Path, what: str, values: pa.Array) -> None:
    if len(values) and pc.count_distinct(values).as_py() != len(values):
        counts = pc.value_counts(values)
        dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
        raise InputError(f"{path}: {what} {_sample(dup)} appears more than once in the id map",
                         hint="each FAISS id maps to exactly one document id, and each document id to one FAISS id")


def _read_csv_strings(path: Path, delimiter: str) -> pa.Table:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: the id map is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}:1: cannot read the id map ({exc})") from None
        cols: list[list[str]] = [[] for _ in header]
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
                for c, v in zip(cols, row):
                    c.append(v)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}:{reader.line_num}: cannot read the id map ({exc})") from None
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(header, cols)})


def _read_jsonl_strings(path: Path) -> pa.Table:
    rows = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1:
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            rows.append({k: None if v is None else str(v) for k, v in obj.items()})
    if not rows:
        raise InputError(f"{path}: the id map is empty")
    return pa.Table.from_pylist(rows)


# --------------------------------------------------------------------------- keys (planning)

def refuse_unknown_scheme(path: str | Path) -> None:
    """An address (``weaviate://...``) whose scheme no adapter reads is refused as such, with the address as
    given and the supported schemes, not looked up as a file (which says "file not found" for a mangled path)."""
    text = str(path)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return
    from urllib.parse import urlsplit

    from migrate.engines import parse_address
    from migrate.errors import ConfigError

    try:
        parse_address(text)  # the one message for an unknown scheme
    except ConfigError as exc:
        try:  # shown without user, password or query: they may hold a secret
            parts = urlsplit(text)
            shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
        except ValueError:
            shown = f"{scheme}://..."
        raise ConfigError(f"{ascii(shown)[1:-1][:100]}: {exc.message}", hint=exc.hint) from None


def read_old_keys(spec: OldIndexSpec) -> OldKeys:
    """Document ids of the old index's vectors, without keeping the vectors."""
    from migrate.engines import is_address

    if is_address(spec.path):
        from migrate.sources.database import read_collection_keys

        return read_collection_keys(spec)
    from migrate.sources.formats import format_for, format_keys

    fmt = format_for(spec.path)
    if fmt is not None:  # a framework's saved index (or an SQL query): its own module reads it
        return format_keys(fmt, spec)
    refuse_unknown_scheme(spec.path)
    path = Path(spec.path)
    check_readable(path)
    if path.suffix.lower() in FAISS_SUFFIXES:
        info = read_faiss(path, reconstruct=False, check_finite=True)
        keys = OldKeys(path=path, kind=info.kind, ntotal=info.ntotal, dim=info.dim, metric=info.metric,
                       faiss_ids=info.faiss_ids)
        if info.faiss_ids is None:
            keys.id_source = "row-order"
            keys.notes.append("index has no id map: vector i belongs to document row i")
            if spec.id_map:
                keys.notes.append(f"{spec.id_map}: not used, the index stores no ids to map")
            return keys
        if spec.id_map:
            keys.id_map, keys.id_source = Path(spec.id_map), "id-map"
            keys.ids = _map_ids(info.faiss_ids, read_id_map(spec.id_map, spec.id_map_faiss_field, spec.id_map_id_field),
                                Path(spec.id_map), path)
        else:
            keys.id_source = "faiss-ids"
            keys.ids = pc.cast(pa.array(info.faiss_ids, pa.int64()), pa.string())
        return keys
    ids, dim = _dataset_ids(path, spec)
    return OldKeys(path=path, kind="dataset", ntotal=len(ids), dim=dim, ids=ids, id_source="dataset")


def _map_ids(faiss_ids: np.ndarray, id_map: pa.Table, map_path: Path, index_path: Path) -> pa.Array:
    pos = pc.index_in(pa.array(faiss_ids, pa.int64()), value_set=id_map.column("faiss_id"))
    if pos.null_count:
        missing = pc.filter(pa.array(faiss_ids), pc.is_null(pos)).to_pylist()
        raise InputError(f"{map_path}: no document id for FAISS ids {_sample(missing)} of {index_path}",
                         hint="the id map must cover every id in the index")
    return id_map.column("id").combine_chunks().take(pos)


def _dataset_ids(path: Path, spec: OldIndexSpec) -> tuple[pa.Array, int]:
    """Ids (and the vector width) of a Parquet/JSONL vector dataset, reading only what is needed."""
    fmt = detect_format(path)
    if fmt == "parquet":
        pf = open_parquet(path)
        names = pf.schema_arrow.names
        idf = spec.id_field or next((c for c in ID_CANDIDATES if c in names), None)
        vf = spec.vector_field or next((c for c in VECTOR_CANDIDATES if c in names), None)
        if idf is None or vf is None or idf not in names or vf not in names:
            raise InputError(f"{path}: an index dataset needs an id and a vector field", hint=f"found: {', '.join(names)}")
        check_id_type(path, idf, pf.schema_arrow.field(idf).type)
        from migrate.sources.documents import vectors_from_arrow

        ids = []
        dim: int | None = None
        row = 0
        try:  # the vectors are checked batch by batch (width, nulls, NaN) and not kept
            for batch in pf.iter_batches(columns=[idf, vf], batch_size=16_384):
                col = batch.column(idf)
                if pa.types.is_dictionary(col.type):
                    col = col.dictionary_decode()
                if col.null_count:
                    bad = row + pc.indices_nonzero(pc.is_null(col)).to_pylist()[0]
                    raise InputError(f"{path}: row {bad} has no {idf!r}")
                ids.append(pc.cast(col, pa.string()))
                vecs = vectors_from_arrow(batch.column(vf), path, first_row=row, dim=dim)
                dim = vecs.shape[1] if dim is None else dim
                row += batch.num_rows
        except READ_ERRORS as exc:
            raise InputError(f"{path}: cannot read as parquet ({_first_line(exc)})") from None
        arr = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
        return arr, dim or 0
    old = open_old_index(path, id_field=spec.id_field, vector_field=spec.vector_field)
    return pa.array(old.ids, pa.string()), old.dim


# --------------------------------------------------------------------------- with vectors (compare, search)

def open_old_index(path: str | Path, id_map: str | Path | None = None, *, id_field: str | None = None,
                   text_field: str | None = None, vector_field: str | None = None,
                   reconstruct: bool = True, id_map_faiss_field: str | None = None,
                   id_map_id_field: str | None = None) -> OldIndex:
    """The old index with its vectors: a FAISS file (+ id map), a Parquet/JSONL dataset or a framework's store."""
    from migrate.sources.formats import format_for, format_vectors

    fmt = format_for(path)
    if fmt is not None:
        return format_vectors(fmt, OldIndexSpec(str(path)))
    refuse_unknown_scheme(path)
    path = Path(path)
    check_readable(path)
    if path.suffix.lower() in FAISS_SUFFIXES:
        info = read_faiss(path, reconstruct=reconstruct)
        notes = []
        if info.faiss_ids is None:
            ids = [str(i) for i in range(info.ntotal)]
            notes.append("index has no id map: vector i belongs to document row i")
        elif id_map is not None:
            ids = _map_ids(info.faiss_ids, read_id_map(id_map, id_map_faiss_field, id_map_id_field), Path(id_map),
                           path).to_pylist()
        else:
            ids = [str(int(f)) for f in info.faiss_ids]
        return OldIndex(path=path, ids=ids, faiss_ids=info.faiss_ids, vectors=info.vectors, dim=info.dim,
                        metric=info.metric, kind=info.kind, lossy=info.lossy, why_no_vectors=info.why_no_vectors,
                        notes=notes)
    from migrate.sources.documents import read_table, vectors_from_arrow

    table = read_table(path)
    names = table.column_names
    idf = id_field or next((c for c in ID_CANDIDATES if c in names), None)
    vf = vector_field or next((c for c in VECTOR_CANDIDATES if c in names), None)
    if idf is None or vf is None or idf not in names or vf not in names:
        raise InputError(f"{path}: an index dataset needs an id and a vector field", hint=f"found: {', '.join(names)}")
    id_col = table.column(idf)
    check_id_type(path, idf, id_col.type)
    if id_col.null_count:
        raise InputError(f"{path}: some rows have no {idf!r}")
    vecs = vectors_from_arrow(table.column(vf), path)
    ids = pc.cast(id_col, pa.string()).to_pylist()
    tf = text_field or next((c for c in TEXT_CANDIDATES if c in names), None)
    texts = None
    if tf and tf in names:
        texts = pc.fill_null(pc.cast(table.column(tf), pa.string()), "").to_pylist()
        bad = [i for i, t in zip(ids, texts) if "\x00" in t]
        if bad:
            raise InputError(f"{path}: documents {bad[:5]} contain NUL bytes",
                             hint="clean the export; NUL is never valid text")
    return OldIndex(path=path, ids=ids, faiss_ids=None, vectors=vecs, dim=vecs.shape[1], texts=texts)


def dataset_has_text(path: Path | str, text_field: str | None = None) -> bool:
    """True when ``path`` is a Parquet/JSONL vector dataset that also holds the text (``text_field``, or one of the
    usual text columns): then it serves as the documents too. Reads the schema or the first record only."""
    path = Path(path)
    if path.suffix.lower() in FAISS_SUFFIXES or not path.is_file():
        return False
    try:
        fmt = detect_format(path)
    except InputError:
        return False
    if fmt == "parquet":
        names = open_parquet(path).schema_arrow.names
    elif fmt == "jsonl":
        from migrate.sources.files import parse_json_record, raw_lines

        with open(path, "rb") as fh:
            first = next(((n, raw) for n, _, raw in raw_lines(fh, path) if raw.strip()), None)
        names = list(parse_json_record(first[1], path, first[0])) if first else []
    else:
        return False
    has_vectors = any(c in names for c in VECTOR_CANDIDATES)
    return has_vectors and (text_field in names if text_field else any(c in names for c in TEXT_CANDIDATES))
