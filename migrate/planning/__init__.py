"""Dry-run planning: the whole migration priced and checked before anything is spent.

``build_plan(PlanOptions)`` reads the sources and runs ``run``'s validation
(``sources.read_sources``; never a key, never the network), works out which model made the
old index and which will run (``choice``), maps the set-up to the new settings with a reason
each (``mapping``), counts tokens with the tokenizer of the model that runs (``counting``)
and predicts requests, tokens, cost, API wall time per rate-limit tier (``pricing``), local
time from a short measured calibration when a local model is given (``calibration``),
storage per dimension and number format (``storage``), and the shard plan. The result is a
plain dict (schema ``PLAN_SCHEMA``, version ``SCHEMA_VERSION``) that renders as Markdown
(``render_markdown``) or rich tables (``render_terminal``); ``gate`` applies
``--fail-on`` (exit code 8, ``PlanFindings``).

Reproducible: everything except ``created_at`` and the ``measured`` section is a function of
the inputs; the sampling is seeded; ``plan_sha256`` hashes exactly that deterministic part.
``run --plan plan.json`` executes a reviewed plan: ``load_plan`` reads and checks it and
``check_plan_matches`` refuses when a source file changed since (size or sha256).
"""

from migrate.planning.build import build_plan
from migrate.planning.findings import gate
from migrate.planning.identity import check_plan_matches, deterministic_part, load_plan, plan_hash
from migrate.planning.options import PlanOptions
from migrate.planning.render_markdown import render_markdown
from migrate.planning.render_terminal import render_terminal
from migrate.planning.schema import PLAN_SCHEMA, SCHEMA_VERSION
from migrate.planning.sources import PlanSources, read_sources

__all__ = ["PLAN_SCHEMA", "SCHEMA_VERSION", "PlanOptions", "PlanSources", "build_plan", "check_plan_matches",
           "deterministic_part", "gate", "load_plan", "plan_hash", "read_sources", "render_markdown",
           "render_terminal"]
