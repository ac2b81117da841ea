"""The old (v2) index as one object, whatever file it came from.

``open_old_index`` accepts a FAISS file (with an optional id-map file that maps
FAISS int64 ids to document ids) or a Parquet/JSONL dataset holding id + vector
(and possibly text). Document ids are always strings here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from migrate.errors import InputError
from migrate.sources.documents import (ID_CANDIDATES, TEXT_CANDIDATES, VECTOR_CANDIDATES, documents_from_table,
                                        read_table, vectors_from_arrow)
from migrate.sources.faiss_index import read_faiss

FAISS_SUFFIXES = {".faiss", ".index", ".idx", ".bin"}


@dataclass
class OldIndex:
    path: Path
    ids: list[str]  # document id of each stored vector, in index order
    faiss_ids: np.ndarray | None  # int64 ids stored in the FAISS index (None: row order)
    vectors: np.ndarray | None
    dim: int
    metric: str = "ip"
    kind: str = "dataset"
    lossy: bool = False
    why_no_vectors: str | None = None
    texts: list[str] | None = None  # only for datasets that carry text
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def read_id_map(path: Path) -> dict[int, str]:
    """An id-map file: columns ``faiss_id`` (int) and ``id`` (document id)."""
    table = read_table(path)
    names = table.column_names
    fid = next((c for c in ("faiss_id", "int_id", "index_id", "vector_id") if c in names), None)
    did = next((c for c in ("id", "doc_id", "_id", "docid") if c in names and c != fid), None)
    if fid is None or did is None:
        raise InputError(f"{path}: id map needs columns faiss_id and id", hint=f"found: {', '.join(names)}")
    fids = table.column(fid).to_pylist()
    dids = table.column(did).to_pylist()
    out: dict[int, str] = {}
    for row, (f, d) in enumerate(zip(fids, dids)):
        if f is None or d is None:
            raise InputError(f"{path}: row {row} of the id map is incomplete")
        try:
            key = int(f)
        except (TypeError, ValueError):
            raise InputError(f"{path}: row {row}: faiss_id {f!r} is not an integer") from None
        if key in out:
            raise InputError(f"{path}: faiss_id {key} appears twice in the id map")
        out[key] = str(d)
    return out


def open_old_index(path: str | Path, id_map: str | Path | None = None, *, id_field: str | None = None,
                   text_field: str | None = None, vector_field: str | None = None,
                   reconstruct: bool = True) -> OldIndex:
    path = Path(path)
    if path.suffix.lower() in FAISS_SUFFIXES:
        info = read_faiss(path, reconstruct=reconstruct)
        notes = []
        if info.faiss_ids is None:
            ids = [str(i) for i in range(info.ntotal)]
            notes.append("index has no id map: vector i belongs to document row i")
        elif id_map is not None:
            mapping = read_id_map(Path(id_map))
            missing = [int(f) for f in info.faiss_ids if int(f) not in mapping]
            if missing:
                raise InputError(f"{id_map}: no document id for faiss ids {missing[:5]}"
                                 f"{' and %d more' % (len(missing) - 5) if len(missing) > 5 else ''}",
                                 hint="the id map must cover every id in the index")
            ids = [mapping[int(f)] for f in info.faiss_ids]
        else:
            ids = [str(int(f)) for f in info.faiss_ids]
        return OldIndex(path=path, ids=ids, faiss_ids=info.faiss_ids, vectors=info.vectors, dim=info.dim,
                        metric=info.metric, kind=info.kind, lossy=info.lossy, why_no_vectors=info.why_no_vectors,
                        notes=notes)
    table = read_table(path)
    names = table.column_names
    if (text_field in names) if text_field else any(c in names for c in TEXT_CANDIDATES):
        docs = documents_from_table(table, path, id_field=id_field, text_field=text_field,
                                    vector_field=vector_field or next((c for c in VECTOR_CANDIDATES if c in names), None))
        if not docs.has_vectors:
            raise InputError(f"{path}: no vector field in this index dataset", hint=f"found: {', '.join(names)}")
        vecs = docs.vectors()
        return OldIndex(path=path, ids=docs.ids, faiss_ids=None, vectors=vecs, dim=vecs.shape[1], texts=docs.texts)
    idf = id_field or next((c for c in ID_CANDIDATES if c in names), None)
    vf = vector_field or next((c for c in VECTOR_CANDIDATES if c in names), None)
    if idf is None or vf is None:
        raise InputError(f"{path}: an index dataset needs an id and a vector field", hint=f"found: {', '.join(names)}")
    vecs = vectors_from_arrow(table.column(vf), path)
    ids = [str(x) for x in table.column(idf).to_pylist()]
    return OldIndex(path=path, ids=ids, faiss_ids=None, vectors=vecs, dim=vecs.shape[1])
