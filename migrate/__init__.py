"""jina-migrate: move a jina-embeddings-v2 index to jina-embeddings-v3.

The package is a pipeline of small steps (read -> embed -> write shard -> finalize)
driven by a deterministic shard plan. See README.md for the user-facing tour and
``migrate/runner.py`` for the pipeline itself.
"""

__version__ = "0.1.0"
