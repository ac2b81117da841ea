"""jina-migrate: move a jina-embeddings-v2 index to jina-embeddings-v3.

The package is a pipeline of small steps, read like its diagram:
source (``migrate.sources``) -> plan (``migrate.shards``) -> embed (``migrate.embed``)
-> shard (``migrate.step``, run by ``migrate.executors``, stored by ``migrate.workspace``)
-> sink (``migrate.sinks``) -> report (``migrate.report``). ``migrate.pipeline`` wires
them together; README.md has the user-facing tour.
"""

__version__ = "0.2.0"
