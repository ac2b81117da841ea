"""The ``jina-migrate`` command line: a thin layer over the library.

Core commands live here (run, status, verify, finalize, search, demo); ``plan``,
``compare``, ``models`` and ``serve-api`` are added from ``migrate.commands``.

A user mistake prints one ``error: ...`` line (first on stderr, at most a ``hint:`` line after
it) and exits non-zero; tracebacks are for bugs. Parser mistakes (unknown option or command,
missing or malformed value) exit 2, like a bad setting (``ConfigError``), whichever click the
installed typer uses (typer >= 0.29 vendors it as ``typer._click``). Bare ``jina-migrate``
prints the help and exits 0. ``run``'s options are generated from the settings
(``migrate.cli_options``): ``--max-input-tokens`` is setting ``max_input_tokens``.
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
from migrate.cli_options import FlagFriendlyCommand, FlagFriendlyGroup, settings_command
from migrate.errors import ConfigError, MigrateError, VerifyFailed
from migrate.secrets import redact

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROG = "jina-migrate"
#: Exit code of a parser mistake (same as a bad setting).
USAGE_EXIT = ConfigError.exit_code

app = typer.Typer(name=PROG, cls=FlagFriendlyGroup, add_completion=False, no_args_is_help=False,
                  pretty_exceptions_enable=False,
                  help="Move a jina-embeddings-v2 index to jina-embeddings-v3: plan, re-embed in resumable shards, "
                       "verify, compare.")


def _path_value(value: Any) -> Any:
    """Typer callback: a PATH option's text as a Path; '' is refused (typer would make it '.')."""
    if value is None or isinstance(value, Path):
        return value
    if not str(value).strip():
        raise typer.BadParameter("expected a path, got ''")
    return Path(value)


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON) on stdout.")]
OutOpt = Annotated[str, typer.Option("--out", "-o", help="Output directory of the migration.", metavar="DIR",
                                     callback=_path_value)]


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
@settings_command()
def run(
    settings: dict[str, Any],
    *,
    use_case: Annotated[Optional[str], typer.Option(
        help="Pick the task by use: search, dedup, sts, classification, clustering (instead of --task).",
        metavar="TEXT", rich_help_panel="Model")] = None,
    executor: Annotated[str, typer.Option(help="Where shards run: local (default) or ray.", metavar="local|ray",
                                          show_default=False, rich_help_panel="Shards")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (auto, ray://host:port).",
                                                       metavar="TEXT", rich_help_panel="Shards")] = None,
    plan: Annotated[Optional[str], typer.Option("--plan", help="Execute exactly this reviewed plan.json.",
                                                metavar="FILE", rich_help_panel="Sources")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="TOML file with settings (its migrate table; "
                                                  "flags win over it, it wins over JINA_MIGRATE_* variables).",
                                                  metavar="FILE", rich_help_panel="Sources")] = None,
) -> None:
    """Re-embed the documents into a new v3 index, in resumable shards."""
    from migrate.config import apply_use_case, load_config, parse_flags

    flags = apply_use_case(dict(settings), use_case)  # option names are the settings' names: no renaming
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor: expected local or ray, got {executor!r}")
    reviewed = None
    if plan is not None:
        reviewed, flags = _apply_plan(_file_option("--plan", plan), parse_flags(flags))
    cfg = load_config(flags, _file_option("--config", config) if config is not None else None)
    from migrate import pipeline  # imported once the settings are known to be good: errors stay fast
    from migrate.executors import make_executor
    from migrate.progress import json_lines, make_reporter

    if reviewed is not None:  # before anything is written: the sources must be the reviewed ones
        from migrate.planning import check_plan_matches
        from migrate.sources.fingerprint import fingerprint_sources

        check_plan_matches(reviewed, fingerprint_sources([cfg.docs, cfg.old_index, cfg.id_map]))
    lines = json_lines(cfg.json)  # README: JSON lines are the default when stdout is not a terminal
    reporter = make_reporter(lines)
    prepared = pipeline.prepare(cfg)
    todo, _ = prepared.pending()
    if todo and _is_paid(cfg) and not cfg.yes:
        if not sys.stdin.isatty():
            raise ConfigError("this run spends API tokens and there is no terminal to confirm",
                              hint="pass --yes (after reviewing `jina-migrate plan`)")
        if not typer.confirm(f"Embed {sum(s.rows for s in todo)} documents through the paid Jina API?", err=True):
            raise typer.Exit(1)
    run_executor = make_executor(executor, **({"address": ray_address} if executor == "ray" else {}))
    pipeline.commit(prepared, reporter)
    summary = pipeline.execute(prepared, pipeline.EmbedderMaker.from_config(cfg), reporter, executor=run_executor)
    if cfg.json:
        return
    _print_summary(summary, stderr=lines)  # stdout holds JSON lines when piped: the person reads stderr


def _file_option(label: str, value: str) -> Path:
    """A FILE option's path; an empty one is refused (it would mean the current directory)."""
    if not value.strip():
        raise ConfigError(f"{label}: expected a file, got ''")
    return Path(value)


def _apply_plan(path: Path, flags: dict[str, Any]) -> tuple[dict, dict[str, Any]]:
    """The reviewed plan's settings, with the flags a plan leaves open (paths out, speed, keys)."""
    from migrate.config import Origin, check_value
    from migrate.planning import load_plan

    reviewed = load_plan(path)
    raw = dict(reviewed.get("run_config", {}))
    if "documents" in raw:  # plan files of version 0.1.0
        raw["docs"] = raw.pop("documents")
    merged = {k: check_value(k, v, Origin(f"{path}: run_config.{k}", "file")) for k, v in raw.items()}
    for k, v in flags.items():
        if v is None:
            continue
        if k in ("out", "shard", "restart", "yes", "json", "base_url", "api_key_env", "api_key_file", "rpm", "tpm",
                 "concurrency", "tier", "device", "dtype") or merged.get(k) is None:
            merged[k] = v
        elif merged[k] != v and k != "cache":
            raise ConfigError(f"--{k.replace('_', '-')} differs from the reviewed plan {path}",
                              hint="drop the flag or make a new plan")
    return reviewed, merged


def _print_summary(summary: dict[str, Any], *, stderr: bool = False) -> None:
    """The run's outcome for a person: on stdout at a terminal, on stderr when stdout carries JSON lines."""
    from rich.console import Console

    from migrate.planning.tables import table_console

    c = table_console(Console(stderr=stderr))  # not a terminal: one line per message, never wrapped
    state = summary["state"]
    c.print(f"[bold]{state}[/bold]: {summary['shards_run']} shards embedded, {summary['shards_skipped']} already done; "
            f"{summary['embedded']} documents embedded, {summary['cached']} reused from cache, "
            f"{summary['tokens']} tokens this run")
    if "outputs" in summary:
        o = summary["outputs"]
        c.print(f"new index: {o['index']}  ({o['rows']} vectors, {o['dimensions']} dims)")
        c.print(f"embeddings: {o['embeddings']}")
        c.print(f"manifest: {Path(summary['out']) / 'manifest.json'}")
        for d in o.get("destinations", []):
            c.print(f"destination {d['address']}: {d['rows']} rows ({d['upserted']} written, "
                    f"{d.get('deleted', 0)} deleted, {d['unchanged']} unchanged)", highlight=False)
    elif state == "partial":
        c.print("this worker's shards are done; run `jina-migrate finalize --out ...` when all workers finish")


# --------------------------------------------------------------------------- status / verify / finalize

@app.command()
def status(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Shards done / pending / failed, rows, tokens, whether a run is live, and an ETA."""
    from migrate.pipeline import status as do_status

    info = do_status(out)
    if json_out:
        echo_json(info)
        return
    eta = info["eta_s"]
    typer.echo(f"{out}: {info['state']}  shards {info['done']}/{info['shards']} done, {info['pending']} pending, "
               f"{info['failed']} failed  rows {info['rows_done']}/{info['rows']}  tokens {info['tokens']}"
               + (f"  ETA {eta:.0f}s" if eta else ""))
    for run_info in info["runs"]:
        alive = {True: "running", False: "stopped (no such process)", None: "on another host"}[run_info["alive"]]
        typer.echo(f"  worker {run_info['worker']}: pid {run_info['pid']} on {run_info['host']}, {alive}")
    if info["state"] == "stopped":
        typer.echo("  no run is live: rerun the same `jina-migrate run` command to resume")
    for d in info.get("destinations", []):
        where = f"  ({d['alias']!r} {d.get('alias_state', 'unknown')})" if d.get("alias") else ""
        rows = d.get("error") or f"{d.get('rows')} rows, {d['delivered_shards']}/{info['shards']} shards written"
        typer.echo(f"  destination {d['address']}: {rows}{where}")
    for node, n in sorted(info.get("shards_per_node", {}).items()):
        typer.echo(f"  node {node}: {n} shards")
    for name in info["failed_shards"][:10]:
        typer.echo(f"  failed or partial: {name} (will be redone on the next run)")


@app.command()
def verify(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Check a finished output: counts, ids once, dims, norms, checksums, index vs id map."""
    from migrate.pipeline import verify as do_verify

    result = do_verify(out)  # no output at all: the same StateError (exit 3) as status
    if json_out:
        echo_json(result)
    else:
        for k, v in result["checks"].items():
            typer.echo(f"  {k}: {v}")
        for p in result["problems"]:
            _err(f"problem: {p}")
        typer.echo("verify: OK" if result["ok"] else f"verify: {len(result['problems'])} problem(s)")
    if not result["ok"]:
        raise VerifyFailed(f"{out}: verify found {len(result['problems'])} problem(s)", hint="see the problem lines")


@app.command()
def finalize(out: OutOpt, json_out: JsonOpt = False) -> None:
    """Build the index once every shard (from every worker) is done."""
    from migrate.pipeline import finalize as do_finalize

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
    old_index: Annotated[Optional[str], typer.Option(help="Old index (FAISS or Parquet/JSONL with vectors).",
                                                     metavar="PATH", callback=_path_value)] = None,
    old_model: Annotated[Optional[str], typer.Option(help="Embedder for queries against the old index (local:PATH or jina-api:...).")] = None,
    id_map: Annotated[Optional[str], typer.Option(help="Id map of the old index.", metavar="PATH",
                                                  callback=_path_value)] = None,
    docs: Annotated[Optional[str], typer.Option(help="Documents, to show text next to ids.", metavar="PATH",
                                                callback=_path_value)] = None,
    query_task: Annotated[Optional[str], typer.Option(help="Task for the query on the new index (default: retrieval.query when passages used retrieval.passage).")] = None,
    k: Annotated[int, typer.Option("-k", help="Results per side.")] = 5,
    base_url: Annotated[Optional[str], typer.Option(help="Send every API request (both sides) to this base URL; "
                                                        "default $JINA_API_BASE_URL, else the Jina API.")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the API key "
                                                           "(default JINA_API_KEY).")] = None,
    api_key_file: Annotated[Optional[str], typer.Option(help="File holding the API key.", metavar="PATH",
                                                        callback=_path_value)] = None,
    json_out: JsonOpt = False,
) -> None:
    """One query against the old and the new index, side by side."""
    import numpy as np

    from migrate.embed.registry import backend_for, get_embedder
    from migrate.models import query_task_for
    from migrate.sinks.faiss_dir import open_output
    from migrate.sources import open_documents, open_old_index

    new, manifest = open_output(out)
    cfg = manifest.config
    task = query_task or query_task_for(cfg["task"])

    def api_opts(spec: str) -> dict[str, Any]:
        """Where the key comes from and where requests go: the flags (or $JINA_API_BASE_URL), never a URL a
        manifest recorded, so a key cannot follow an old or foreign address."""
        if not backend_for(spec).remote:
            return {}
        given = {"base_url": base_url, "api_key_env": api_key_env, "api_key_file": api_key_file}
        return {k: v for k, v in given.items() if v is not None}

    opts = {"dimensions": cfg.get("dimensions")} | api_opts(cfg["model"])
    new_emb = get_embedder(cfg["model"], **{k2: v for k2, v in opts.items() if v is not None})
    qv = new_emb.embed([query], task=task).vectors
    if qv.shape[1] != new.dim:
        raise ConfigError(f"query has {qv.shape[1]} dims but the index has {new.dim}",
                          hint="use the model (and --dimensions) the index was built with")
    sides = {"new": new.search(qv, k)[0]}
    if old_index is not None:
        if not old_model:
            raise ConfigError("--old-index needs --old-model to embed the query the old way")
        old = open_old_index(old_index, id_map=id_map)
        if old.vectors is None:
            raise ConfigError(f"{old_index}: {old.why_no_vectors}")
        old_emb = get_embedder(old_model, **api_opts(old_model))
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
    from rich.table import Table

    table = Table(title=f"query: {query}  (new index task: {task})")
    for name in sides:
        table.add_column(f"{name} id")
        table.add_column("cos")
    for row in range(k):
        cells = []
        for name in sides:
            hits = sides[name]
            cells += [hits[row][0], f"{hits[row][1]:.3f}"] if row < len(hits) else ["", ""]
        table.add_row(*cells)
    from migrate.planning.tables import table_console

    table_console().print(table)


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
    out: Annotated[str, typer.Option("--out", "-o", help="Where to write the demo migration.", metavar="DIR",
                                     callback=_path_value)] = "runs/demo",
    fast: Annotated[bool, typer.Option("--fast", help="Serve jina-embeddings-v3 with the 64-d static stand-in: a "
                                                      "quick smoke run (its report says little about quality).",
                                       metavar="")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Migrate the bundled sample end to end, offline, no key: the embedded default."""
    from migrate.demo import run_demo

    result = run_demo(out, json_out=json_out, fast=fast)
    if json_out:  # JSON lines like `run --json`: the result is the last event of the stream
        typer.echo(redact(json.dumps({"event": "demo", **result}, default=str)))


# --------------------------------------------------------------------------- entry point

_PLUGINS_DONE = False


def _register_plugins() -> None:
    """Add the commands of ``migrate.commands`` (once), all with flag-friendly help."""
    global _PLUGINS_DONE
    if not _PLUGINS_DONE:
        from migrate.commands import COMMAND_MODULES

        for name in COMMAND_MODULES:
            try:
                mod = importlib.import_module(f"migrate.commands.{name}")
            except ModuleNotFoundError as exc:
                if exc.name == f"migrate.commands.{name}":
                    continue
                raise
            mod.register(app)
        _PLUGINS_DONE = True
    from typer.core import TyperCommand

    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:  # typer >= 0.29 fills in TyperCommand itself
            info.cls = FlagFriendlyCommand


@app.callback(invoke_without_command=True)
def _main(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:  # bare `jina-migrate`: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """Class ``name`` (ClickException, Abort, Exit) from typer and from every click it may raise from."""
    found: list[type[BaseException]] = []
    for module in ("typer", "typer.exceptions", "typer._click.exceptions", "click.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:  # click itself need not be installed (typer >= 0.29 vendors it)
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    return tuple(found)


def _show_parser_error(exc: BaseException) -> int:
    """``error: <click's message>`` then a hint line; returns the exit code (2)."""
    fmt = getattr(exc, "format_message", None)
    message = fmt() if callable(fmt) else str(exc)
    message = " ".join(str(message).split()) or type(exc).__name__
    _err(f"error: {message}")
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or PROG
    _err(f"hint: run '{command} --help'")
    return USAGE_EXIT


INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted: completed shards are kept; rerun the same command to resume"
#: Commands whose work is kept in shards; any other command is simply stopped.
_RESUMABLE = {"run", "finalize", "demo"}


def _interrupted_message(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    return INTERRUPTED_MESSAGE if command in _RESUMABLE else "interrupted"


def exit_code_for(exc: BaseException, argv: list[str] | None = None) -> int:
    """Print what a user needs about ``exc`` (one ``error:`` line) and return the exit code.

    Bugs (anything that is not a user mistake, an exit or an interrupt) are re-raised with
    their traceback.
    """
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if isinstance(exc, MigrateError):
        _err(f"error: {exc}")
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
        _err(_interrupted_message(argv))
        return INTERRUPTED
    if isinstance(exc, _click_classes("Exit")):
        return int(getattr(exc, "exit_code", 0) or 0)
    help_ctx = getattr(exc, "ctx", None) if type(exc).__name__ == "NoArgsIsHelpError" else None
    if help_ctx is not None:
        typer.echo(help_ctx.get_help())  # a command asked for its help when called bare: not a mistake
        return 0
    if isinstance(exc, _click_classes("ClickException")):  # with standalone_mode=False they arrive here
        return _show_parser_error(exc)
    if isinstance(exc, _click_classes("Abort")):
        _err("error: aborted")
        return 1
    raise exc


def main(argv: list[str] | None = None) -> None:
    _register_plugins()
    try:
        rc = app(args=argv, prog_name=PROG, standalone_mode=False)
    except BaseException as exc:  # noqa: BLE001 - exit_code_for re-raises bugs
        sys.exit(exit_code_for(exc, argv))
    if rc == INTERRUPTED:  # typer turned Ctrl-C into Exit(130), which click returns instead of raising
        _err(_interrupted_message(argv))
    sys.exit(rc if isinstance(rc, int) else 0)
