"""Before/after retrieval comparison (``jina-migrate compare``).

``engine.compare`` runs the same queries against ``side.Side`` objects (a searchable
document store, a query encoder, a description) and returns a typed ``schema.CompareReport``;
``gates`` turns it into an exit code; ``render_html`` / ``render_md`` / ``render_json``
write it out, in the words of ``wording``. ``build`` assembles sides from a migration output
(searched in place through ``output``), an old index or a model + corpus, and rebuilds a
finished output's query embedder (``embedder_from_manifest``). ``search`` is the one home of
top-k search (``top_k``).
"""
