"""Small whole-file reads: a documents file as lists, a vector dataset as one Arrow table.

The pipeline streams documents through :mod:`migrate.sources.files`; ``compare``,
``search`` and ``plan``'s sampling read small files whole through :func:`open_documents`,
which uses the same reader (same field rules, same messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from migrate.errors import InputError
from migrate.sources.files import (VECTOR_CANDIDATES, DocumentSpec, FileDocuments, detect_format, open_parquet,
                                   parse_json_record, raw_lines)

@dataclass
class Documents:
    """Documents keyed by string id, in file order."""

    path: Path
    ids: list[str]
    texts: list[str]
    vector_field: str | None = None

    @property
    def has_vectors(self) -> bool:
        return self.vector_field is not None

    def vectors(self) -> np.ndarray:
        if self.vector_field is None:
            raise InputError(f"{self.path}: holds no vectors")
        return vectors_from_arrow(read_table(self.path).column(self.vector_field), self.path)

    def __len__(self) -> int:
        return len(self.ids)




def _read_jsonl(path: Path) -> pa.Table:
    """A whole JSONL file as one table (vector datasets); each bad record is named with its line."""
    try:
        with open(path, "rb") as fh:
            rows = [parse_json_record(raw, path, lineno) for lineno, _, raw in raw_lines(fh, path) if raw.strip()]
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
            table = open_parquet(path).read()  # the same footer checks as the streaming reader
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


def vectors_from_arrow(col: pa.ChunkedArray | pa.Array, path: Path, *, first_row: int = 0,
                       dim: int | None = None) -> np.ndarray:
    """Arrow list/fixed-size-list column -> float32 (n, d); rejects ragged, null and non-finite rows.

    ``first_row`` numbers the rows in messages when ``col`` is one batch of a stream, and ``dim``
    is the width earlier batches had (a batch of another width is refused).
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        bad = [first_row + i for i in pc.indices_nonzero(pc.is_null(arr)).to_pylist()[:5]]
        raise InputError(f"{path}: rows {bad} have no vector")
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        flat = arr.flatten().to_numpy(zero_copy_only=False)
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        ref = dim if dim is not None else (int(lengths[0]) if len(lengths) else 0)
        if len(lengths) and (lengths != ref).any():
            bad = [first_row + int(i) for i in np.nonzero(lengths != ref)[0][:5]]
            raise InputError(f"{path}: vectors have different dimensions (rows {bad} differ from the first row's {ref})")
        d = ref
        flat = arr.flatten().to_numpy(zero_copy_only=False)
    else:
        raise InputError(f"{path}: vector column has type {arr.type}, expected a list of floats")
    try:
        vecs = np.asarray(flat, dtype=np.float32).reshape(len(arr), d)
    except (TypeError, ValueError):
        raise InputError(f"{path}: vector values are not numbers") from None
    if dim is not None and d != dim:
        raise InputError(f"{path}: vectors have different dimensions (rows from {first_row} have {d}, the first "
                         f"row's {dim})")
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        bad = [first_row + int(i) for i in np.nonzero(~finite)[0][:5]]
        raise InputError(f"{path}: rows {bad} hold NaN or infinite vector values",
                         hint="rebuild those vectors or drop the rows")
    return vecs


def open_documents(path: str | Path, id_field: str | None = None, text_field: str | None = None,
                   title_field: str | None = None, vector_field: str | None = None,
                   delimiter: str | None = None) -> Documents:
    """Read a whole documents file; ids become strings; a title is joined to the text with one space."""
    path = Path(path)
    src = FileDocuments(DocumentSpec(str(path), id_field, text_field, title_field, delimiter=delimiter))
    ids: list[str] = []
    texts: list[str] = []
    for batch in src.scan():
        ids += batch.ids
        texts += batch.texts
    bad = [i for i, t in zip(ids, texts) if "\x00" in t]
    if bad:
        raise InputError(f"{path}: documents {bad[:5]} contain NUL bytes", hint="clean the export; NUL is never valid text")
    vf = vector_field
    if vf is None and src.format == "parquet":
        names = open_parquet(path).schema_arrow.names
        vf = next((c for c in VECTOR_CANDIDATES if c in names), None)
    return Documents(path=path, ids=ids, texts=texts, vector_field=vf)
