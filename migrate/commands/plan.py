"""``jina-migrate plan`` (dry-run report) and ``jina-migrate models`` (the catalogue).

``plan`` needs no key and no network for files: it reads the sources, counts tokens with the
target tokenizer and prints the predicted requests, tokens, cost, time, storage and
shards, with findings. ``--old-index URI`` reads a vector-database collection (its own
statistics, and the text it holds: ``--docs`` may be omitted); ``--sink URI`` estimates the
destination collection's storage and index size and checks that it does not exist yet. Outputs: rich tables (default), ``--markdown`` (also appended to
``$GITHUB_STEP_SUMMARY`` with ``--step-summary``), ``--json``, and ``--out plan.json``
(what ``run --plan`` executes). ``--fail-on warning|error|never`` sets the CI exit code
(8, ``PlanFindings``). ``models`` prints the catalogue; tables never split a model name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate.cli_options import settings_command

from migrate.atomic import write_json, write_text
from migrate.embed.ratelimit import DEFAULT_TIER, TIERS

#: ``conservative (default), free, tier1, tier2``: the client's presets, for the help text.
TIER_CHOICES = ", ".join(f"{name} (default)" if name == DEFAULT_TIER else name for name in TIERS)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("models")(models_command)


#: Boolean flags: ``metavar=""`` keeps typer from printing a ``<bool>`` placeholder next to them in help.
FLAG = {"metavar": ""}


#: Options ``plan`` shares with ``run`` (one declaration each, in ``migrate.cli_options``).
SHARED = ("docs", "old_index", "id_map", "id_field", "text_field", "title_field", "faiss_id_field", "delimiter",
          "id_map_faiss_field", "id_map_id_field", "on_missing", "on_empty", "task", "dimensions", "late_chunking",
          "truncate", "price_per_million", "tier", "rpm", "tpm", "concurrency", "shard_size", "sink", "index_type",
          "hnsw_m", "hnsw_ef_construction", "ivf_nlist", "precision", "rescore")


@settings_command(SHARED)
def plan_command(
    settings: dict,
    from_model: Annotated[Optional[str], typer.Option("--from-model", help="The model of the old index: base-en, small-en, base-de, base-es, base-zh, base-code, or custom:DIMS / custom:NAME:DIMS for another model (default: inferred from the index width).")] = None,
    use_case: Annotated[Optional[str], typer.Option(help="search, deduplication, sts, classification, clustering (picks the task).")] = None,
    deployment: Annotated[Optional[str], typer.Option(help="api (Jina API) or local (a model on this machine); default: local with --local-model, else api.")] = None,
    non_commercial: Annotated[bool, typer.Option("--non-commercial", **FLAG, help="Local use is non-commercial (CC BY-NC is fine).")] = False,
    tokenizer: Annotated[Optional[Path], typer.Option(help="tokenizer.json (or a folder holding one) of the model that runs, for exact counts.")] = None,
    estimate_only: Annotated[bool, typer.Option("--estimate-only", **FLAG, help="Skip the tokenizer; estimate from characters.")] = False,
    sample_size: Annotated[int, typer.Option(help="Documents tokenized when the corpus is too big to count all.")] = 2000,
    full_max_chars: Annotated[int, typer.Option(help="Count every document up to this many characters, else sample.")] = 24_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample (same seed, same plan).")] = 0,
    inputs_per_request: Annotated[int, typer.Option(help="Inputs per API request (max 2048).")] = 2048,
    request_tokens: Annotated[Optional[int], typer.Option(help="Token budget per API request (packing).")] = None,
    local_model: Annotated[Optional[str], typer.Option(help="The local model that will run (folder, standin:NAME or local:SPEC): the plan uses its width, tokenizer, input limit and prompts, and times a short calibration run.")] = None,
    calibration_seconds: Annotated[float, typer.Option(help="Seconds of embedding to time in the calibration.")] = 20.0,
    calibrate: Annotated[bool, typer.Option("--calibrate/--no-calibration", **FLAG, help="Time a sample with --local-model (default) or only plan the run with it.")] = True,
    bill_prefix: Annotated[bool, typer.Option("--bill-prefix", **FLAG, help="Count the task instruction prefix as billed tokens.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the plan JSON here (for `run --plan`).")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write the Markdown report here ('-' for stdout).")] = None,
    step_summary: Annotated[bool, typer.Option("--step-summary", **FLAG, help="Append the Markdown to $GITHUB_STEP_SUMMARY.")] = False,
    fail_on: Annotated[str, typer.Option(help="Exit with code 8 on findings at this level: warning, error (default), never.")] = "error",
    json_out: Annotated[bool, typer.Option("--json", **FLAG, help="Print the plan JSON on stdout.")] = False,
    schema: Annotated[bool, typer.Option("--schema", **FLAG, help="Print the plan's JSON Schema and exit.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with settings, as for `run` (flags win over it, it wins over JINA_MIGRATE_* variables).", metavar="FILE")] = None,
) -> None:
    """Price and check the whole migration before anything is spent (no key, no network)."""
    from migrate.planning import PLAN_SCHEMA, PlanOptions, build_plan, gate, render_markdown, render_terminal
    from migrate.planning.findings import check_fail_on

    if schema:
        typer.echo(json.dumps(PLAN_SCHEMA, indent=2))
        return
    from migrate.errors import ConfigError

    shared = _run_settings(settings, use_case=use_case, local_model=local_model, deployment=deployment,
                           config=config)
    if shared.get("docs") is None and shared.get("old_index") is None:
        raise ConfigError("plan needs --docs FILE (the documents to migrate)",
                          hint="or --old-index URI: a database collection that holds the text")
    check_fail_on(fail_on)
    shared["documents"] = shared.pop("docs", None)
    opts = PlanOptions(
        **shared, from_model=from_model, use_case=use_case, deployment=deployment, commercial=not non_commercial,
        tokenizer=tokenizer, estimate_only=estimate_only, sample_size=sample_size, full_max_chars=full_max_chars,
        seed=seed, inputs_per_request=inputs_per_request, request_tokens=request_tokens, local_model=local_model,
        calibrate=calibrate, calibration_seconds=calibration_seconds, bill_prefix=bill_prefix)
    plan = build_plan(opts)
    if out is not None:
        write_json(out, plan)
    md = render_markdown(plan) if markdown is not None or step_summary else ""  # read only when rendered
    if markdown is not None and str(markdown) != "-":
        write_text(markdown, md)
    if step_summary:
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if target:
            with open(target, "a", encoding="utf-8") as fh:  # appending is how GitHub collects step summaries
                fh.write(md + "\n")
    if json_out:
        typer.echo(json.dumps(plan, indent=2))
    elif markdown is not None and str(markdown) == "-":
        typer.echo(md)
    else:
        render_terminal(plan)
        if out is not None:
            typer.echo(f"plan written to {out} (plan_sha256 {plan['plan_sha256'][:16]})")
    gate(plan, fail_on)


def _run_settings(settings: dict, *, use_case: str | None, local_model: str | None, deployment: str | None,
                  config: Path | None) -> dict:
    """The shared settings, from the very ``RunConfig`` that ``run`` would build and validate.

    ``run`` reads the same options (and ``--config`` file and ``JINA_MIGRATE_*`` variables) into
    one ``RunConfig`` and refuses it before anything is read; ``plan`` builds that object the same
    way (``load_config``), with the model the plan is for (the API's v3, or ``--local-model`` when it
    runs), so both accept and refuse exactly the same values with the same messages
    (``--dimensions 16``, ``--use-case`` with ``--task``, a bad address...). Returned: the shared
    settings some layer gave (the others stay the planner's defaults).
    """
    from migrate.config import DEFAULT_MODEL, apply_use_case, load_config
    from migrate.planning.backends import local_spec

    runs_local = bool(local_model) and (deployment or "local") == "local"
    flags = apply_use_case(dict(settings), use_case)
    flags["model"] = local_spec(local_model) if runs_local and local_model else DEFAULT_MODEL
    cfg = load_config(flags, config)
    given = cfg.given()
    return {name: getattr(cfg, name) for name in SHARED if name in given}


def models_command(
    json_out: Annotated[bool, typer.Option("--json", **FLAG, help="Print the catalogue as JSON.")] = False,
) -> None:
    """List the Jina models jina-migrate knows: dims, context, tokenizer, licence."""
    from migrate.models import CATALOGUE, USE_CASES, query_task_for

    if json_out:
        typer.echo(json.dumps({"models": [m.as_dict() for m in CATALOGUE.values()],
                               "use_cases": {k: {"document_task": v, "query_task": query_task_for(v)} for k, v in USE_CASES.items()}},
                              indent=2))
        return
    render_models()


def render_models(console=None) -> None:
    """The catalogue as a table (model names are never split; see ``migrate.planning.tables``)."""
    from migrate.models import CATALOGUE
    from migrate.planning.tables import Column, show_table, table_console

    rows = []
    for m in CATALOGUE.values():
        notes = []
        if m.bilingual:
            notes.append("bilingual (obsolete: v3 is multilingual)")
        if m.code:
            notes.append("code: v2 still scores higher than v3")
        if m.matryoshka_dims:
            notes.append("Matryoshka " + "/".join(map(str, m.matryoshka_dims)))
        if m.tasks:
            notes.append("tasks " + ", ".join(m.tasks))
        rows.append((m.name, str(m.dimensions), str(m.max_tokens), m.params, m.tokenizer_family, m.license,
                     "; ".join(notes)))
    columns = [Column("model"), Column("dims"), Column("context"), Column("params"), Column("tokenizer"),
               Column("licence", prose=True), Column("notes", prose=True)]
    show_table(table_console(console), "Jina embedding models", columns, rows)
