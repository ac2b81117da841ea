"""The files of the FAISS + Parquet output directory (written by :mod:`migrate.sinks.faiss_dir`, re-checked by
:mod:`migrate.sinks.faiss_verify`)."""

from __future__ import annotations

from migrate.precision import VectorFormat
from migrate.sinks.faiss_precision import RESCORE

EMBEDDINGS = "embeddings.parquet"
INDEX = "index.faiss"
ID_MAP = "id_map.parquet"
OUTPUTS = (EMBEDDINGS, ID_MAP, INDEX)


def outputs_of(fmt: VectorFormat) -> tuple[str, ...]:
    """The files an output of format ``fmt`` holds (``rescore.npy`` only with ``--rescore``)."""
    return OUTPUTS + ((RESCORE,) if fmt.rescore else ())


__all__ = ["EMBEDDINGS", "ID_MAP", "INDEX", "OUTPUTS", "RESCORE", "outputs_of"]
