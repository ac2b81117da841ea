"""LangChain's FAISS folder (``FAISS.save_local(folder, index_name="index")``), read without LangChain.

The folder holds ``NAME.faiss`` (a bare FAISS index: row i answers searches as label i) and ``NAME.pkl``, a
pickle of ``(InMemoryDocstore, {label: docstore_id})`` whose docstore maps each id to a ``Document``
(``page_content``, ``metadata``). Row i is the document ``index_to_docstore_id[label_i]``: ids come from the
store, so chunked indexes (several rows per source file, each its own docstore id) keep every row.

Unpickling can run arbitrary code, so the pickle is read by :class:`_Unpickler`, whose ``find_class`` allows
only the docstore and document classes LangChain has written (under their current and older module paths),
mapped to small local stand-ins, plus a few plain value types; any other global is refused before it is
created. ``--old-index FOLDER`` (one ``.faiss``/``.pkl`` pair) or ``--old-index FOLDER/NAME.faiss``.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from migrate.errors import InputError
from migrate.sources.faiss_index import read_faiss
from migrate.sources.stored import StoredIndex

NAME = "langchain-faiss"
WHAT = "a LangChain FAISS folder"


class _Docstore:
    """Stand-in for LangChain's ``InMemoryDocstore`` (state ``{'_dict': {id: Document}}``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._dict: Any = None

    def __setstate__(self, state: Any) -> None:
        fields = _fields(state)
        self._dict = fields.get("_dict")


class _Document:
    """Stand-in for LangChain's ``Document``: pydantic v2 state (``{'__dict__': ..., '__pydantic_fields_set__',
    ...}``), pydantic v1 state (``{'__dict__': ..., '__fields_set__', ...}``) or a plain ``__dict__``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.page_content: Any = None
        self.metadata: Any = None

    def __setstate__(self, state: Any) -> None:
        fields = _fields(state)
        self.page_content = fields.get("page_content")
        self.metadata = fields.get("metadata")


def _fields(state: Any) -> dict:
    """The attribute dict inside a pickled object's state, whichever pydantic (or none) wrote it."""
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots) of an object with __slots__
        state = state[0] or state[1]
    if not isinstance(state, dict):
        return {}
    inner = state.get("__dict__")
    return inner if isinstance(inner, dict) else state


_DOCSTORES = ("langchain_community.docstore.in_memory", "langchain.docstore.in_memory")
_DOCUMENTS = ("langchain_core.documents.base", "langchain_core.documents", "langchain.schema.document",
              "langchain.schema", "langchain.docstore.document")
#: (module, name) -> what the pickle gets instead: the only globals a LangChain pickle may name.
ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "InMemoryDocstore"): _Docstore for m in _DOCSTORES},
    **{(m, "Document"): _Document for m in _DOCUMENTS},
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): OrderedDict,
    **{("datetime", n): getattr(__import__("datetime"), n) for n in ("date", "datetime", "time", "timedelta",
                                                                    "timezone")},
}


class Refused(Exception):
    """The pickle names a global outside ``ALLOWED``."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("a persistent id")


def safe_load(path: Path) -> Any:
    """The pickle at ``path``, built from allowed classes only; anything else is one ``InputError``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except Refused as exc:
        raise InputError(f"{path}: refused: the pickle would create {exc} (only LangChain's docstore and "
                         "documents are read; loading anything else could run code)",
                         hint="rebuild the folder with FAISS.save_local, or export ids, texts and vectors to "
                              "Parquet") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises anything; one line each
        raise InputError(f"{path}: not a LangChain FAISS pickle ({type(exc).__name__}: {str(exc)[:120]})",
                         hint="pass the folder FAISS.save_local wrote (NAME.faiss + NAME.pkl)") from None


# --------------------------------------------------------------------------- the folder

def _is_docstore_pickle(pkl: Path) -> bool:
    """LangChain's pickle names its docstore class in its first bytes; any other ``.pkl`` beside a FAISS file
    (an application's own id list, say) leaves that file a plain FAISS index. Only bytes are looked at."""
    try:
        with open(pkl, "rb") as fh:
            return b"InMemoryDocstore" in fh.read(256)
    except OSError:
        return False


def _pairs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.glob("*.faiss")
                      if p.is_file() and p.with_suffix(".pkl").is_file() and _is_docstore_pickle(p.with_suffix(".pkl")))
    except OSError:
        return []


def detect(path: Path) -> bool:
    if path.is_dir():
        return bool(_pairs(path))
    return path.suffix == ".faiss" and path.is_file() and _is_docstore_pickle(path.with_suffix(".pkl"))


def _faiss_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    pairs = _pairs(path)
    if len(pairs) > 1:
        names = ", ".join(p.stem for p in pairs)
        raise InputError(f"{path}: holds {len(pairs)} LangChain indexes ({names})",
                         hint=f"name one: --old-index {path / pairs[0].name}")
    return pairs[0]


def files(path: Path) -> list[Path]:
    index = _faiss_file(path)
    return [index, index.with_suffix(".pkl")]


def _parse(pkl: Path, obj: Any) -> tuple[dict, dict]:
    """(docstore dict, index_to_docstore_id) from the unpickled object, checked."""
    if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], _Docstore)
            and isinstance(obj[1], dict) and isinstance(obj[0]._dict, dict)):
        raise InputError(f"{pkl}: not a LangChain FAISS pickle (expected (InMemoryDocstore, index_to_docstore_id), "
                         f"got {type(obj).__name__})", hint="pass the folder FAISS.save_local wrote")
    return obj[0]._dict, obj[1]


@functools.lru_cache(maxsize=2)
def _load(index: Path, stamp: tuple, with_vectors: bool) -> StoredIndex:
    pkl = index.with_suffix(".pkl")
    docstore, mapping = _parse(pkl, safe_load(pkl))
    info = read_faiss(index, reconstruct=with_vectors, check_finite=not with_vectors)
    labels = info.faiss_ids if info.faiss_ids is not None else np.arange(info.ntotal, dtype=np.int64)
    ids: list[str] = []
    texts: list[str] = []
    metadata: list[dict] = []
    for row, label in enumerate(labels.tolist()):
        doc_id = mapping.get(label)
        if doc_id is None:
            raise InputError(f"{pkl}: row {row} of {index.name} (label {label}) has no docstore id",
                             hint="the .faiss and .pkl files are from different saves; save the index again")
        doc = docstore.get(doc_id)
        if not isinstance(doc, _Document):
            raise InputError(f"{pkl}: docstore id {doc_id!r} (row {row}) has no document",
                             hint="the .faiss and .pkl files are from different saves; save the index again")
        if not isinstance(doc.page_content, str):
            raise InputError(f"{pkl}: document {doc_id!r} has no page_content text")
        meta = doc.metadata if isinstance(doc.metadata, dict) else {}
        ids.append(str(doc_id))
        texts.append(doc.page_content)
        metadata.append({str(k): _plain(v) for k, v in meta.items()})
    store = StoredIndex(path=index, format=NAME, kind=info.kind, ids=ids, texts=texts, metadata=metadata,
                        dim=info.dim, metric=info.metric, vectors=info.vectors, faiss_ids=labels, lossy=info.lossy,
                        why_no_vectors=info.why_no_vectors)
    unused = len(docstore) - len(set(ids))
    if unused > 0:
        store.notes.append(f"{unused} docstore entries of {pkl.name} are in no index row: left out")
    store.findings.append({"code": "langchain-docstore", "severity": "info",
                           "message": f"{index.parent}: a LangChain FAISS index ({index.stem}); ids are its docstore "
                                      "ids, texts its page_content, metadata carried as payload (read without "
                                      "running the pickle's code)", "fix": ""})
    return store


def _plain(value: Any) -> Any:
    """Metadata values as JSON-able values (dates as ISO text, sets as lists)."""
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def load(path: Path | str, with_vectors: bool = False) -> StoredIndex:
    index = _faiss_file(Path(path))
    pkl = index.with_suffix(".pkl")
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (index, pkl))
    return _load(index, stamp, with_vectors)

