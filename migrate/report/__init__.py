"""Before/after retrieval comparison (``jina-migrate compare``).

``engine.compare`` runs the same queries against two ``side.Side`` objects (plain ids,
vectors and a query encoder) and returns a JSON-ready report; ``gates`` turns it into
an exit code; ``render_html`` / ``render_md`` / ``render_json`` write it out.
``build`` assembles sides from a migration output, an old index or a model + corpus.
"""
