"""The rehearsal kit: a Jina-compatible embeddings server with real stand-in models.

Used by ``jina-migrate serve-api`` (rehearse a migration or a CI job for free), by
``jina-migrate demo`` (the offline end-to-end run) and by the test suite (the API
client's test bed). Modules: ``server`` (the HTTP app), ``requests`` (request checks),
``models`` (which stand-in serves which Jina name, and what the name accepts),
``runtimes`` (the stand-ins at work), ``limits`` (RPM/TPM/concurrency), ``faults``
(seeded fault injection), ``run`` (start it in a thread, a process or the foreground),
``main`` (the child-process entry point). The stand-in models themselves are located by
``migrate.embed.standins``.
"""
