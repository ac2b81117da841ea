"""The output directory of a migration, owned by one object: :class:`Workspace`."""

from migrate.workspace.core import (MANIFEST, PLAN_TABLE, SHARDS_DIR, PlanSlice, Workspace, arrow_to_vectors,
                                    ensure_inside, shard_schema, vectors_to_arrow)
from migrate.workspace.manifest import IndexSettings, Manifest, Result

__all__ = ["MANIFEST", "PLAN_TABLE", "SHARDS_DIR", "IndexSettings", "Manifest", "PlanSlice", "Result", "Workspace",
           "arrow_to_vectors", "ensure_inside", "shard_schema", "vectors_to_arrow"]
