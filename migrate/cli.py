"""The ``jina-migrate`` command line: a thin layer over the library.

Core commands live here (run, status, verify, finalize, search, demo); ``plan``,
``compare``, ``models`` and ``serve-api`` are added from ``migrate.commands``.
A user mistake prints one ``error:`` line and exits non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from migrate import __version__
from migrate.errors import ConfigError, MigrateError, VerifyFailed
from migrate.secrets import redact

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(name="jina-migrate", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Move a jina-embeddings-v2 index to jina-embeddings-v3: plan, re-embed in resumable shards, "
                       "verify, compare.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON) on stdout.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory of the migration.")]


def echo_json(obj: Any) -> None:
    typer.echo(redact(json.dumps(obj, indent=2, default=str)))


def _err(msg: str) -> None:
    typer.echo(redact(msg), err=True)


# --------------------------------------------------------------------------- run

def _is_paid(cfg) -> bool:
    """A run against the real Jina API (not a loopback server) spends money."""
    from migrate.embed.registry import backend_for

    if not backend_for(cfg.model).billed:
        return False
    from urllib.parse import urlparse

    host = urlparse(cfg.base_url or "https://api.jina.ai").hostname or ""
    return host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127.")


@app.command()
def run(
    docs: Annotated[Optional[Path], typer.Option("--docs", "-d", help="Documents: Parquet, JSONL or CSV/TSV.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (created).")] = None,
    old_index: Annotated[Optional[Path], typer.Option("--old-index", help="The v2 index: FAISS file or Parquet/JSONL with vectors.")] = None,
    id_map: Annotated[Optional[Path], typer.Option("--id-map", help="File mapping FAISS int64 ids to document ids (faiss_id, id).")] = None,
    id_field: Annotated[Optional[str], typer.Option(help="Document id field (default: id/_id).")] = None,
    text_field: Annotated[Optional[str], typer.Option(help="Document text field (default: text).")] = None,
    title_field: Annotated[Optional[str], typer.Option(help="Title field, joined before the text with a space.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Embedder: jina-api:MODEL or local:PATH (default jina-api:jina-embeddings-v3).")] = None,
    task: Annotated[Optional[str], typer.Option(help="v3 task: text-matching (default, mimics v2), retrieval.passage, retrieval.query, separation, classification, none.")] = None,
    use_case: Annotated[Optional[str], typer.Option(help="Pick the task by use: search, dedup, sts, classification, clustering.")] = None,
    dimensions: Annotated[Optional[int], typer.Option(help="Matryoshka size (v3: 1024 default; 768 keeps v2's width).")] = None,
    allow_any_dimensions: Annotated[bool, typer.Option("--allow-any-dimensions", help="Local v3: allow sizes outside the model's Matryoshka list.")] = False,
    late_chunking: Annotated[Optional[bool], typer.Option("--late-chunking/--no-late-chunking", help="Embed chunks of each document in one context.")] = None,
    chunker: Annotated[Optional[str], typer.Option(help="With --late-chunking: tokens:256, sentences:3, ...")] = None,
    truncate: Annotated[Optional[bool], typer.Option("--truncate/--no-truncate", help="API: cut inputs over 8192 tokens instead of failing.")] = None,
    max_input_tokens: Annotated[Optional[int], typer.Option(help="Cut each input at this many tokens (local models).")] = None,
    shard_size: Annotated[Optional[int], typer.Option(help="Documents per shard (default 1000).")] = None,
    shard: Annotated[Optional[str], typer.Option(help="Run only worker I of N (I/N), for a CI matrix; then `finalize`.")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard shards of another configuration and start over.")] = False,
    on_missing: Annotated[Optional[str], typer.Option(help="Vectors with no document: fail (default) or skip.")] = None,
    on_empty: Annotated[Optional[str], typer.Option(help="Documents with empty text: fail (default) or skip.")] = None,
    cache: Annotated[Optional[list[Path]], typer.Option(help="Earlier output dir whose vectors may be reused (repeatable).")] = None,
    index_type: Annotated[Optional[str], typer.Option(help="flat (default), hnsw or ivfpq.")] = None,
    hnsw_m: Annotated[Optional[int], typer.Option(help="HNSW M.")] = None,
    ivf_nlist: Annotated[Optional[int], typer.Option(help="IVF lists.")] = None,
    pq_m: Annotated[Optional[int], typer.Option(help="PQ sub-quantizers.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Local models: auto, cpu, cuda, mps.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="Local models: auto, fp32, fp16, bf16.")] = None,
    token_budget: Annotated[Optional[int], typer.Option(help="Local models: padded tokens per batch.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="API base URL (default https://api.jina.ai).")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the key (default JINA_API_KEY).")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File holding the API key.")] = None,
    tier: Annotated[Optional[str], typer.Option(help="Rate-limit preset: free, tier1, tier2.")] = None,
    rpm: Annotated[Optional[int], typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[Optional[int], typer.Option(help="Tokens per minute.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Concurrent requests.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Stop before spending more tokens than this (resumable).")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Stop before this cost (needs --price-per-million).")] = None,
    price_per_million: Annotated[Optional[float], typer.Option(help="Price per million tokens (none assumed).")] = None,
    executor: Annotated[str, typer.Option(help="local (default) or ray.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (auto, ray://host:port).")] = None,
    plan: Annotated[Optional[Path], typer.Option("--plan", help="Execute exactly this reviewed plan.json.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with settings (flags win).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a paid run (required without a TTY).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-embed the documents into a new v3 index, in resumable shards."""
    from migrate import runner
    from migrate.config import load_config
    from migrate.embed.registry import get_embedder
    from migrate.progress import make_reporter

    flags = dict(docs=docs, out=out, old_index=old_index, id_map=id_map, id_field=id_field,
                 text_field=text_field, title_field=title_field, model=model, task=task, dimensions=dimensions,
                 allow_any_dimensions=allow_any_dimensions or None,
                 late_chunking=late_chunking, chunker=chunker, max_input_tokens=max_input_tokens, truncate=truncate, shard_size=shard_size,
                 shard=shard, restart=restart or None, on_missing=on_missing, on_empty=on_empty, cache=cache or None,
                 index_type=index_type, hnsw_m=hnsw_m, ivf_nlist=ivf_nlist, pq_m=pq_m, device=device, dtype=dtype,
                 token_budget=token_budget, base_url=base_url, api_key_env=api_key_env, api_key_file=api_key_file,
                 tier=tier, rpm=rpm, tpm=tpm, concurrency=concurrency, max_tokens=max_tokens,
                 max_cost=max_cost, price_per_million=price_per_million, yes=yes or None, json=json_out or None)
    if use_case:
        if task:
            raise ConfigError("give --task or --use-case, not both")
        flags["task"] = task_for_use_case(use_case)
    reviewed = None
    if plan is not None:
        reviewed, flags = _apply_plan(plan, flags)
    cfg = load_config(flags, config)
    if reviewed is not None:  # before anything is written: the sources must be the reviewed ones
        from migrate.plan import check_plan_matches
        from migrate.shards import fingerprint_sources

        check_plan_matches(reviewed, fingerprint_sources([cfg.docs, cfg.old_index, cfg.id_map]))
    reporter = make_reporter(cfg.json)
    job = runner.prepare(cfg, reporter)
    todo, _ = runner.pending_shards(job)
    if todo and _is_paid(cfg) and not cfg.yes:
        if not sys.stdin.isatty():
            raise ConfigError("this run spends API tokens and there is no terminal to confirm",
                              hint="pass --yes (after reviewing `jina-migrate plan`)")
        if not typer.confirm(f"Embed {sum(s.rows for s in todo)} documents through the paid Jina API?"):
            raise typer.Exit(1)

    def make_embedder():
        emb = get_embedder(cfg.model, **cfg.backend_options())
        probe = getattr(emb, "probe", None)
        if callable(probe):
            probe(task=cfg.task)
        return emb

    run_executor = runner.local_executor
    if executor == "ray":
        from migrate.executors.ray_executor import make_ray_executor

        run_executor = make_ray_executor(ray_address)
    elif executor != "local":
        raise ConfigError(f"unknown executor {executor!r}", hint="use local or ray")
    summary = runner.execute(job, make_embedder, reporter, executor=run_executor)
    if cfg.json:
        return
    _print_summary(summary)


def task_for_use_case(use_case: str) -> str:
    try:
        from migrate.models import task_for_use_case as lookup

        return lookup(use_case)
    except ImportError:  # pragma: no cover - catalogue module missing
        table = {"search": "retrieval.passage", "dedup": "text-matching", "deduplication": "text-matching",
                 "sts": "text-matching", "classification": "classification", "clustering": "separation"}
        if use_case not in table:
            raise ConfigError(f"unknown use case {use_case!r}", hint=f"choose one of {', '.join(table)}") from None
        return table[use_case]


def _apply_plan(path: Path, flags: dict[str, Any]) -> tuple[dict, dict[str, Any]]:
    from migrate.plan import load_plan

    reviewed = load_plan(path)
    merged = dict(reviewed.get("run_config", {}))
    if "documents" in merged:  # plan files of version 0.1.0
        merged["docs"] = merged.pop("documents")
    for k, v in flags.items():
        if v is not None and k in ("out", "shard", "restart", "yes", "json", "base_url", "api_key_env",
                                   "api_key_file", "rpm", "tpm", "concurrency", "tier", "device", "dtype"):
            merged[k] = v
        elif v is not None and k not in merged:
            merged[k] = v
        elif v is not None and merged.get(k) not in (None, v) and k not in ("cache",):
            raise ConfigError(f"--{k.replace('_', '-')} differs from the reviewed plan {path}",
                              hint="drop the flag or make a new plan")
    return reviewed, merged


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console

    c = Console(stderr=False)
    state = summary["state"]
    c.print(f"[bold]{state}[/bold]: {summary['shards_run']} shards embedded, {summary['shards_skipped']} already done; "
            f"{summary['embedded']} documents embedded, {summary['cached']} reused from cache, "
            f"{summary['tokens']} tokens this run")
    if "outputs" in summary:
        o = summary["outputs"]
        c.print(f"new index: {o['index']}  ({o['rows']} vectors, {o['dimensions']} dims)")
        c.print(f"embeddings: {o['embeddings']}")
        c.print(f"manifest: {Path(summary['out']) / 'manifest.json'}")
    elif state == "partial":
        c.print("this worker's shards are done; run `jina-migrate finalize --out ...` when all workers finish")


# --------------------------------------------------------------------------- status / verify / finalize

@app.command()
def status(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Shards done / pending / failed, rows, tokens and an ETA."""
    from migrate.runner import open_job

    job = open_job(out)
    done, pending, failed = [], [], []
    for s in job.plan.shards:
        if job.store.is_complete(s, job.config_fingerprint):
            done.append(s)
        elif job.store.data_path(s).exists() or job.store.record_path(s).exists():
            failed.append(s)
        else:
            pending.append(s)
    recs = [job.store.record(s) or {} for s in done]
    secs = sum(float(r.get("seconds", 0)) for r in recs)
    rows_done = sum(s.rows for s in done)
    rows_left = sum(s.rows for s in pending + failed)
    eta = secs / rows_done * rows_left if rows_done else None
    info = {"out": str(out), "state": job.manifest.get("state"), "shards": len(job.plan.shards), "done": len(done),
            "pending": len(pending), "failed": len(failed), "rows": job.plan.total_rows, "rows_done": rows_done,
            "tokens": sum(int(r.get("tokens", 0)) for r in recs), "eta_s": round(eta, 1) if eta is not None else None,
            "failed_shards": [s.name for s in failed], "config": job.manifest.get("config")}
    nodes: dict[str, int] = {}
    for r in recs:  # records written by Ray workers name their node
        if r.get("node"):
            nodes[str(r["node"])] = nodes.get(str(r["node"]), 0) + 1
    if nodes:
        info["shards_per_node"] = nodes
    if json_out:
        echo_json(info)
        return
    typer.echo(f"{out}: {info['state']}  shards {len(done)}/{len(job.plan.shards)} done, {len(pending)} pending, "
               f"{len(failed)} failed  rows {rows_done}/{job.plan.total_rows}  tokens {info['tokens']}"
               + (f"  ETA {eta:.0f}s" if eta else ""))
    for node, n in sorted(nodes.items()):
        typer.echo(f"  node {node}: {n} shards")
    for name in info["failed_shards"][:10]:
        typer.echo(f"  failed or partial: {name} (will be redone on the next run)")


@app.command()
def verify(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Check a finished output: counts, ids once, dims, norms, checksums, index vs id map."""
    from migrate.verify import verify as do_verify

    result = do_verify(out)
    if json_out:
        echo_json(result)
    else:
        for k, v in result["checks"].items():
            typer.echo(f"  {k}: {v}")
        for p in result["problems"]:
            _err(f"problem: {p}")
        typer.echo("verify: OK" if result["ok"] else f"verify: {len(result['problems'])} problem(s)")
    if not result["ok"]:
        raise typer.Exit(VerifyFailed.exit_code)


@app.command()
def finalize(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Build the index once every shard (from every worker) is done."""
    from migrate.index import finalize as do_finalize

    result = do_finalize(out)
    if json_out:
        echo_json(result)
    else:
        typer.echo(f"new index: {result['index']} ({result['rows']} vectors, {result['dimensions']} dims)")


# --------------------------------------------------------------------------- search

@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    out: OutOpt,
    old_index: Annotated[Optional[Path], typer.Option(help="Old index (FAISS or Parquet/JSONL with vectors).")] = None,
    old_model: Annotated[Optional[str], typer.Option(help="Embedder for queries against the old index (local:PATH or jina-api:...).")] = None,
    id_map: Annotated[Optional[Path], typer.Option(help="Id map of the old index.")] = None,
    docs: Annotated[Optional[Path], typer.Option(help="Documents, to show text next to ids.")] = None,
    query_task: Annotated[Optional[str], typer.Option(help="Task for the query on the new index (default: retrieval.query when passages used retrieval.passage).")] = None,
    k: Annotated[int, typer.Option("-k", help="Results per side.")] = 5,
    base_url: Annotated[Optional[str], typer.Option(help="API base URL for jina-api embedders.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """One query against the old and the new index, side by side."""
    import numpy as np

    from migrate.embed.registry import backend_for, get_embedder
    from migrate.index import load_output
    from migrate.sources import open_documents, open_old_index

    new = load_output(out)
    cfg = new.manifest["config"]
    emb_info = new.manifest.get("embedder", {})
    from migrate.models import query_task_for

    task = query_task or query_task_for(cfg["task"])
    opts = {"dimensions": cfg.get("dimensions")} | ({"base_url": base_url or emb_info.get("base_url")}
                                                   if backend_for(cfg["model"]).remote else {})
    new_emb = get_embedder(cfg["model"], **{k2: v for k2, v in opts.items() if v is not None})
    qv = new_emb.embed([query], task=task).vectors[0]
    sides = {"new": _top_k(new.vectors, new.ids, qv, k)}
    if old_index is not None:
        if not old_model:
            raise ConfigError("--old-index needs --old-model to embed the query the old way")
        old = open_old_index(old_index, id_map=id_map)
        if old.vectors is None:
            raise ConfigError(f"{old_index}: {old.why_no_vectors}")
        old_emb = get_embedder(old_model)
        oq = old_emb.embed([query], task="none").vectors[0]
        norms = np.linalg.norm(old.vectors, axis=1, keepdims=True).clip(1e-12)
        sides["old"] = _top_k(old.vectors / norms, old.ids, oq, k)
    texts = {}
    if docs is not None:
        d = open_documents(docs)
        texts = dict(zip(d.ids, d.texts))
    result = {"query": query, "task": task, **{name: [{"id": i, "score": round(s, 4), "text": texts.get(i, "")[:160]}
                                                     for i, s in hits] for name, hits in sides.items()}}
    if json_out:
        echo_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"query: {query}  (new index task: {task})")
    for name in sides:
        table.add_column(f"{name} id"), table.add_column("cos")
    for row in range(k):
        cells = []
        for name in sides:
            hits = sides[name]
            cells += [hits[row][0], f"{hits[row][1]:.3f}"] if row < len(hits) else ["", ""]
        table.add_row(*cells)
    Console().print(table)


def _top_k(vectors, ids: list[str], q, k: int) -> list[tuple[str, float]]:
    import numpy as np

    if vectors.shape[1] != q.shape[0]:
        raise ConfigError(f"query has {q.shape[0]} dims but the index has {vectors.shape[1]}",
                          hint="use the model (and --dimensions) the index was built with")
    scores = vectors @ (q / max(np.linalg.norm(q), 1e-12))
    top = np.argsort(-scores)[:k]
    return [(ids[i], float(scores[i])) for i in top]


# --------------------------------------------------------------------------- demo

@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the demo migration.")] = Path("runs/demo"),
    json_out: JsonOpt = False,
) -> None:
    """Migrate the bundled sample end to end, offline, no key: the embedded default."""
    from migrate.demo import run_demo

    result = run_demo(out, json_out=json_out)
    if json_out:
        echo_json(result)


# --------------------------------------------------------------------------- entry point

def _register_plugins() -> None:
    from migrate.commands import COMMAND_MODULES

    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"migrate.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"migrate.commands.{name}":
                continue
            raise
        mod.register(app)


@app.callback(invoke_without_command=True)
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        typer.echo(f"jina-migrate {__version__}")
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    _register_plugins()
    try:
        rc = app(args=argv, standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except MigrateError as exc:
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted: completed shards are kept; rerun the same command to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            _err("aborted")
            sys.exit(1)
        raise
