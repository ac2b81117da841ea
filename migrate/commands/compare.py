"""``jina-migrate compare``: the before/after retrieval report and CI gate.

Runs the same queries against the old index and the new one and writes one
self-contained HTML report, a Markdown summary (also appended to
``$GITHUB_STEP_SUMMARY`` when set) and JSON. ``--fail-if`` gates set the exit code.

Each side comes from one of:

* the new side: ``--new OUT`` (a finished migration, searched in place through its
  ``index.faiss``; queries embedded by the manifest's model with ``retrieval.query`` when
  passages used ``retrieval.passage``), ``--new URI`` (a vector-database collection searched
  with its engine's own index; queries embedded by ``--new-model``), or ``--new-model SPEC`` +
  ``--docs`` (embed now);
* the old side: ``--old-index INDEX`` (FAISS / Parquet / JSONL with vectors) or ``--old-index
  URI`` (a collection, searched by its engine) + ``--old-model SPEC`` for the queries, or
  ``--old-model SPEC`` + ``--docs``.

A collection side holds no vectors in memory; with ``--ann`` its results come from an exact
streamed pass and the engine's own index is measured against it. Without ``--docs``, result
snippets come from the collections' text fields.

Without ``--qrels`` the first line is still one verdict, from label-free evidence
(``report.labelfree``): the known-item regression guard (default), a ``--judge`` over both sides'
pooled top-k, and human ``--labels`` (``jina-migrate label``) combined with the judge; ``--queries``
is then a query log whose text stays out of the reports unless ``--show-queries``.

Flags follow ``run`` and ``search``: ``--old-index``, ``--docs``, ``-k`` (``--old``,
``--corpus`` and ``--k`` stay as aliases). ``--base-url`` (or ``$JINA_API_BASE_URL``) sends
every API request of every side there. Output paths are checked before any model loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from migrate.errors import ConfigError

OptStr = Optional[str]
OptPath = Optional[Path]


def _options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``key=value`` pairs -> backend options (ints, floats and booleans parsed)."""
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"{flag} {p!r} is not key=value", hint=f"e.g. {flag} max_tokens=256")
        k, v = p.split("=", 1)
        val: Any = v
        if v.lower() in ("true", "false"):
            val = v.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    val = cast(v)
                    break
                except ValueError:
                    pass
        out[k.strip().replace("-", "_")] = val
    return out


def _read_corpus(path: Path, title_field: str | None = None):
    """The documents: their text as indexed (``title + " " + text``) and, with a title field, the two apart
    (the known-item guard takes a title or a sentence out of its document)."""
    from migrate.report.data import Corpus, read_corpus

    if path.is_dir() or path.name.endswith("corpus.jsonl"):
        return read_corpus(path)
    from migrate.sources import open_documents

    if title_field is None:
        docs = open_documents(path)
        return Corpus(list(docs.ids), list(docs.texts))
    joined = open_documents(path, title_field=title_field)
    bodies = open_documents(path)
    titles = open_documents(path, text_field=title_field)
    return Corpus(list(joined.ids), list(joined.texts), list(titles.texts), list(bodies.texts))


def _manifest_title_field(new: Path | str | None, docs: Path | None) -> str | None:
    """The title field the new output's run joined, when ``--docs`` is the file that run read."""
    if new is None or docs is None or _is_uri(new):
        return None
    import json

    try:
        recorded = json.loads((Path(new) / "manifest.json").read_text()).get("documents") or {}
        same = Path(str(recorded.get("path"))).resolve() == Path(docs).resolve()
    except (OSError, ValueError, AttributeError):
        return None
    return recorded.get("title_field") if same and isinstance(recorded.get("title_field"), str) else None


def _dims(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"--dims {text!r} must be comma-separated integers", hint="e.g. --dims 512,256,128") from None


def _writable_file(flag: str, path: Path) -> None:
    """Fail now, in one line, if ``path`` cannot be written: a directory there, a regular file
    where a folder must be, or a folder this process cannot create files in."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory, not a file", hint=f"give {flag} a file name")
    _writable_dir(flag, path.parent, of=path)


def _writable_dir(flag: str, folder: Path, *, of: Path | None = None) -> None:
    import tempfile

    what = f"{flag} {of if of is not None else folder}"
    for parent in (folder, *folder.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(f"{what}: {parent} is a regular file, not a directory",
                                  hint=f"point {flag} at a folder (or a file inside one)")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write into {folder} ({exc.strerror or type(exc).__name__})",
                          hint=f"point {flag} at a writable place") from None


def _api_error(exc: Exception) -> Exception:
    """An embedding failure during compare: same message, a hint that fits compare (it keeps no state)."""
    from migrate.errors import MigrateError

    if isinstance(exc, MigrateError) and exc.hint and "resume" in exc.hint and not exc.message.startswith("judge "):
        return type(exc)(exc.message, hint="compare keeps no partial results: fix the cause, then run the "
                                           "same command again")
    return exc


def _is_uri(value: Path | str | None) -> bool:
    from migrate.engines import is_address

    return value is not None and is_address(str(value))


def _side_path(flag: str, value: str | None) -> Path | str | None:
    """A side's location as given: a collection URI stays text (a Path would fold its ``//``)."""
    if value is None or _is_uri(value):
        return value
    if not value.strip():
        raise ConfigError(f"{flag}: expected a path or a database address, got ''")
    return Path(value)


def run_compare(
    *,
    new: Path | str | None, new_model: str | None, new_task: str | None, new_doc_task: str, new_options: dict,
    old: Path | str | None, old_model: str | None, old_task: str, old_doc_task: str, old_options: dict, id_map: Path | None,
    queries: Path | None, qrels: Path | None, corpus: Path | None, beir: Path | None, split: str,
    k: int, dims: list[int], ann: bool, nprobe: int | None, ef_search: int | None, examples: int,
    fail_if: list[str], report_dir: Path, html: Path | None, markdown: Path | None, json_path: Path | None,
    github_summary: bool, cache: Path | None, title: str | None, base_url: str | None,
    api_key_env: str | None = None, api_key_file: Path | None = None,
    also: list[str] | None = None,
    judge: str | None = None, judge_base_url: str | None = None, judge_options: dict | None = None,
    known_item: bool | None = None, known_item_sample: int = 300, known_item_kind: str = "auto", seed: int = 0,
    labels: Path | None = None, query_sample: int | None = None, show_queries: bool = False,
    title_field: str | None = None, pool_out: Path | None = None, precisions: list[str] | None = None,
) -> tuple[Any, dict[str, str]]:
    """Build both sides, compare, evaluate gates and write the outputs; returns (report, written files).

    Every request of every API side (old, new, extra) goes to ``base_url`` when given,
    else to ``$JINA_API_BASE_URL``, else to the public endpoint. ``new`` / ``old`` may be a
    vector-database address (``qdrant:///...?collection=docs``): that side is the collection,
    searched with its engine's own index.

    Without ``qrels`` the report still gives one verdict, from the strongest label-free evidence
    (``report.labelfree``): ``labels`` combined with a ``judge``, the judge alone, labels alone, or the
    known-item regression guard (on by default without qrels; ``known_item`` True/False forces it).
    ``queries`` is then read as a query log (JSONL, CSV or plain text; repeats removed; ``query_sample``
    of them drawn by ``seed``) and its text stays out of the reports unless ``show_queries``.
    """
    from migrate.atomic import write_text
    from migrate.embed.registry import get_embedder
    from migrate.errors import EmbeddingError
    from migrate.models import query_task_for
    from migrate.report import build
    from migrate.report import labelfree
    from migrate.report.collection import close_side, collection_texts, open_collection, side_from_collection
    from migrate.report.data import read_labels, read_qrels, read_queries, read_query_log
    from migrate.report.engine import CompareConfig, compare
    from migrate.report.gates import evaluate_gates, parse_gate
    from migrate.report.metrics import METRICS
    from migrate.report.render_html import render_html
    from migrate.report.render_json import render_json
    from migrate.report.render_md import render_markdown
    from migrate.secrets import redact

    if beir is not None:
        queries = queries or beir
        qrels = qrels or beir
        corpus = corpus or beir
    # Every user mistake that can be seen from the flags fails here, before any model loads.
    if queries is None:
        raise ConfigError("compare needs queries", hint="pass --queries FILE (JSONL/CSV/TSV) or --beir DIR")
    if new is None and not (new_model and corpus is not None):
        raise ConfigError("no new side", hint="pass --new OUT_DIR (a finished migration), or --new-model SPEC with --docs")
    if _is_uri(new) and not new_model:
        raise ConfigError(f"--new {new}: a collection needs --new-model to embed the queries",
                          hint="pass the model that embedded the collection, e.g. --new-model "
                               "jina-api:jina-embeddings-v3 (with --new-option dimensions=N when it was truncated)")
    if old is not None and not old_model:
        raise ConfigError("--old-index needs --old-model to embed the queries the old way",
                          hint="e.g. --old-model jina-api:jina-embeddings-v2-base-en or local:PATH")
    if _is_uri(old) and id_map is not None:
        raise ConfigError(f"--id-map {id_map}: only a FAISS file needs an id map; the collection {old} has its own ids",
                          hint="drop --id-map")
    for flag, uri in (("--new", new), ("--old-index", old)):
        if _is_uri(uri):
            from migrate.engines import collection_address

            collection_address(str(uri), flag)
    if old is None and not (old_model and corpus is not None):
        raise ConfigError("no old side", hint="pass --old-index INDEX with --old-model SPEC, or --old-model SPEC with --docs")
    extra_specs: list[tuple[str, Path]] = []
    for item in also or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path or name in ("old", "new"):
            raise ConfigError(f"--also {item!r} must be NAME=OUT_DIR with a NAME other than old/new",
                              hint="e.g. --also late-chunked=runs/v3-late")
        extra_specs.append((name, Path(path)))
    labelfree.check_not_both(qrels, labels)
    guard_on = known_item if known_item is not None else qrels is None
    for g in fail_if:
        gate = parse_gate(g, {"old", "new"} | {n for n, _ in extra_specs})
        if qrels is None and gate.metric in METRICS:
            raise ConfigError(f"gate {g!r} needs relevance judgments for {gate.metric}",
                              hint='pass --qrels, or gate on the label-free evidence: "verdict == worse", '
                                   '"knownitem == regression" or, with --judge, "judged.ndcg@10 < old"')
        if gate.metric.startswith("judged.") and not judge:
            raise ConfigError(f"gate {g!r} needs a judge", hint="pass --judge SPEC, e.g. "
                                                                "jina-api:jina-reranker-v2-base-multilingual")
        if gate.metric == "knownitem" and not guard_on:
            raise ConfigError(f"gate {g!r} needs the known-item guard",
                              hint="drop --no-known-item" if known_item is False else
                              "add --known-item (it is off by default when --qrels decide)")
    outputs = {"html": ("--html", html or report_dir / "report.html"),
               "markdown": ("--markdown", markdown or report_dir / "report.md"),
               "json": ("--json-out", json_path or report_dir / "report.json")}
    _writable_dir("--report-dir", report_dir)
    for flag, out_path in outputs.values():
        _writable_file(flag, out_path)
    api_opts = {k: v for k, v in (("api_key_env", api_key_env), ("api_key_file", api_key_file)) if v is not None}
    for opts, spec in ((new_options, new_model), (old_options, old_model)):
        if build.is_api_spec(spec):
            opts |= api_opts | ({"base_url": base_url} if base_url else {})
    judgments = read_qrels(qrels, split=split) if qrels is not None else None
    query_log = None
    if judgments is not None:
        qs = read_queries(queries, only=set(judgments))
    else:
        query_log = read_query_log(queries, sample=query_sample, seed=seed)
        qs = query_log.queries
    if judge:
        labelfree.check_judged_queries(len(qs), judge)
    human_labels = read_labels(labels) if labels is not None else None
    if (judge or labels is not None or pool_out is not None) and corpus is None and not (_is_uri(new) or _is_uri(old)):
        raise ConfigError("the judge, labels and --pool-out need the documents' text",
                          hint="pass --docs (the documents the index was built from)")
    if pool_out is not None:
        _writable_file("--pool-out", pool_out)
    title_field = title_field or _manifest_title_field(new, corpus)
    text_corpus = _read_corpus(corpus, title_field) if corpus is not None else None
    cache_dir = cache or build.cache_dir()
    judge_model = None
    if judge:  # built now: a wrong spec, a missing key or a folder that is no cross-encoder fails before any spend
        from migrate.report.judges import make_judge

        judge_model = make_judge(judge, base_url=judge_base_url, api_base_url=base_url,
                                 api_key_env=api_key_env, api_key_file=api_key_file, options=judge_options)

    # collections are opened before any model loads: a missing one fails in one line, at once
    stores: dict[str, Any] = {}
    try:
        for key, uri in (("new", new), ("old", old)):
            if _is_uri(uri):
                stores[key] = open_collection(str(uri), exact=ann)
    except BaseException:
        for store in stores.values():
            store.engine.close()
        if judge_model is not None:
            judge_model.close()
        raise
    sides: list[Any] = []
    ppi = None
    try:
        # ---- new side
        if "new" in stores:
            assert new_model is not None  # checked above
            new_side = side_from_collection(stores.pop("new"), get_embedder(new_model, **new_options), name="new",
                                            query_task=new_task or query_task_for(new_doc_task),
                                            doc_task=new_doc_task, ann=ann)
        elif new is not None:
            emb = get_embedder(new_model, **new_options) if new_model else None
            new_side = build.side_from_output(new, name="new", query_task=new_task, embedder=emb, base_url=base_url,
                                              embedder_options=new_options if not new_model else None,
                                              ann=ann, nprobe=nprobe, ef_search=ef_search, api_options=api_opts)
        else:
            assert new_model is not None and text_corpus is not None  # checked above
            new_side = build.side_from_model(new_model, text_corpus, name="new", doc_task=new_doc_task,
                                             query_task=new_task or query_task_for(new_doc_task),
                                             options=new_options, cache=cache_dir)
        sides.append(new_side)

        # ---- old side
        if "old" in stores:
            assert old_model is not None  # checked above
            old_side = side_from_collection(stores.pop("old"), get_embedder(old_model, **old_options), name="old",
                                            query_task=old_task, ann=ann)
            old_side.doc_task = old_doc_task  # as declared (--old-doc-task): a collection does not record it
        elif old is not None and old_model:
            old_side = build.side_from_old_index(old, get_embedder(old_model, **old_options), name="old",
                                                 id_map=id_map, query_task=old_task, ann=ann, doc_task=old_doc_task)
        else:
            assert old_model is not None and text_corpus is not None  # checked above
            old_side = build.side_from_model(old_model, text_corpus, name="old", doc_task=old_doc_task,
                                             query_task=old_task, options=old_options, cache=cache_dir)
        sides.append(old_side)

        extra = [build.side_from_output(path, name=name, base_url=base_url, api_options=api_opts,
                                        embedder_options=new_options if not new_model else None)
                 for name, path in extra_specs]

        cfg = CompareConfig(k=k, dims=dims, precisions=precisions or [], ann=ann, examples=examples)
        if title:
            cfg.title = title
        doc_text = text_corpus.lookup() if text_corpus is not None else collection_texts([new_side, old_side])
        lists: dict[str, dict[str, list[str]]] = {}
        report = compare(old_side, new_side, qs, judgments, cfg, extra=extra, doc_text=doc_text,
                         run_dir=report_dir / "runs", lists_out=lists)
        if pool_out is not None or judge_model is not None or human_labels is not None:
            if doc_text is None:
                raise ConfigError("the judge, labels and --pool-out need the documents' text: the collections hold "
                                  "no text field", hint="pass --docs (the documents the index was built from)")
        if pool_out is not None:
            assert doc_text is not None  # refused above
            labelfree.write_pool(pool_out, qs, lists, doc_text, old=old_side.name, new=new_side.name, k=cfg.k)
        with labelfree.score_cache(cache_dir) as scores:
            if judge_model is not None:
                assert doc_text is not None  # refused above
                pool = labelfree.judge(qs, lists, doc_text, judge_model, old=old_side, new=new_side, k=cfg.k,
                                       cache=scores)
                report.judged = pool.result
            elif human_labels is not None:
                pool = labelfree.label_pool(qs, lists, old=old_side.name, new=new_side.name, k=cfg.k)
            if human_labels is not None:
                assert labels is not None  # human_labels are read from it
                ppi = labelfree.combine_labels(pool, human_labels, old=old_side.name, new=new_side.name,
                                               labels_path=labels)
                report.ppi = ppi
            if guard_on:
                docs_for_guard = labelfree.guard_documents(text_corpus, [old_side, new_side], title_field)
                report.knownitem = labelfree.known_item(old_side, new_side, docs_for_guard, sample=known_item_sample,
                                                        seed=seed, kind=known_item_kind, cache=scores,
                                                        required=known_item is True)
    except EmbeddingError as exc:
        raise _api_error(exc) from None
    finally:
        for side in sides:
            close_side(side)
        for store in stores.values():  # opened, but its side was never built
            store.engine.close()
        if judge_model is not None:
            judge_model.close()
    report.verdict = labelfree.verdict(report, ppi=ppi, labels_only=ppi is not None and judge_model is None)
    report.config["label_free"] = {"judge": judge, "known_item": guard_on, "known_item_sample": known_item_sample,
                                   "known_item_kind": known_item_kind, "seed": seed,
                                   "labels": str(labels) if labels is not None else None}
    if query_log is not None:
        report.config["query_log"] = query_log.summary()
        if not show_queries:
            labelfree.hide_query_text(report)
    evaluate_gates(report, fail_if)

    written: dict[str, str] = {}
    md = redact(render_markdown(report))
    makers = {"html": lambda: redact(render_html(report)), "markdown": lambda: md,
              "json": lambda: redact(render_json(report))}
    for kind, (flag, out_path) in outputs.items():
        try:
            write_text(out_path, makers[kind]())
        except OSError as exc:
            raise ConfigError(f"{flag} {out_path}: cannot write ({exc.strerror or type(exc).__name__})",
                              hint=f"point {flag} at a writable place") from None
        written[kind] = str(out_path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if github_summary and summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(md + "\n")
        written["github_step_summary"] = summary
    return report, written


def _print_summary(report: Any, written: dict[str, str]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    from migrate.planning.tables import table_console
    from migrate.report.evidence_words import evidence_lines
    from migrate.report.wording import change_words

    con = table_console(Console())  # piped: one line per row, never squeezed to 80 columns
    old_n, new_n = report.sides.old.name, report.sides.new.name
    v = report.verdict
    if v is not None:  # the first line: one verdict, never stronger than its evidence
        colour = {"better": "green", "worse": "red"}.get(v.code, "cyan")
        con.print(f"[bold {colour}]verdict[/]: " + escape(v.sentence), highlight=False)
        for w in v.warnings:
            con.print("[yellow]warning[/]: " + escape(w), highlight=False)
        if v.more:
            con.print("to decide: " + escape(v.more), highlight=False)
    for line in evidence_lines(report):
        con.print(line, highlight=False, markup=False)
    if report.metrics is not None:
        t = Table(title=f"retrieval quality, {report.metrics.n_judged} judged queries", box=box.SIMPLE)
        for col in ("metric", old_n, new_n, "Δ", "Δ 95% CI", "p (rand.)", "verdict"):
            t.add_column(col, no_wrap=col != "verdict")
        for metric, s in report.metrics.rows[0].stats.items():
            t.add_row(metric, f"{s.old_mean:.4f}", f"{s.new_mean:.4f}", f"{s.delta:+.4f}",
                      f"{s.delta_ci[0]:+.4f}..{s.delta_ci[1]:+.4f}", f"{s.p_randomization:.3g}", change_words(s))
        con.print(t)
    a = report.agreement
    con.print(f"change (a description, not evidence of quality): overlap@{a.k} {a.overlap_mean:.3f} · "
              f"RBO {a.rbo_mean:.3f} · same top-1 {a.top1_kept_rate:.3f}", highlight=False)
    sweep = report.matryoshka
    if sweep is not None and any(r.precision != "float32" for r in sweep.rows):
        t = Table(title="new side: size x precision (exact search over the stored vectors)", box=box.SIMPLE)
        for col in ("dims", "precision", "bytes/vector", "nDCG@10", f"overlap@{a.k} vs full"):
            t.add_column(col, no_wrap=True)
        for r in sweep.rows:
            t.add_row(str(r.dims), r.precision, str(r.bytes),
                      f"{r.metrics['ndcg@10']:.4f}" if r.metrics else "–", f"{r.overlap_vs_full:.3f}")
        con.print(t)
    for s in report.sides.all():
        con.print(f"{s.name}: {s.description.identity}", highlight=False, markup=False)
    for g in report.gates:
        con.print(("[red]" if g.failed else "[green]") + g.message + f"[/] ({g.gate})", highlight=False)
    for kind, path in written.items():
        con.print(f"{kind}: {path}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the CLI."""

    @app.command("compare")
    def compare_cmd(
        new: Annotated[OptStr, typer.Option("--new", metavar="OUT_DIR|URI", help="Finished migration output dir (the v3 index), or a vector-database collection (postgresql://..., qdrant://..., milvus://..., lancedb://..., chroma://...) searched with its own index (needs --new-model).")] = None,
        new_model: Annotated[OptStr, typer.Option(help="Embedder for the new side (default: the manifest's model); with --docs and no --new, embeds the documents.")] = None,
        new_task: Annotated[OptStr, typer.Option(help="Query task on the new side (default: retrieval.query when passages used retrieval.passage, else the passage task).")] = None,
        new_doc_task: Annotated[str, typer.Option(help="Document task when the new side embeds --docs.")] = "retrieval.passage",
        new_option: Annotated[Optional[list[str]], typer.Option(help="Backend option for the new embedder, key=value (repeatable), e.g. max_tokens=512.")] = None,
        old_index: Annotated[OptStr, typer.Option("--old-index", "--old", metavar="PATH|URI", help="Old (v2) index: FAISS file, Parquet/JSONL with id + vector, or a vector-database collection searched with its own index (--old is an alias).")] = None,
        old_model: Annotated[OptStr, typer.Option(help="Embedder that made the old index (for the queries): jina-api:MODEL or local:PATH.")] = None,
        old_task: Annotated[str, typer.Option(help="Query task on the old side (v2 has none).")] = "none",
        old_doc_task: Annotated[str, typer.Option(help="Document task when the old side embeds --docs.")] = "none",
        old_option: Annotated[Optional[list[str]], typer.Option(help="Backend option for the old embedder, key=value (repeatable).")] = None,
        id_map: Annotated[OptPath, typer.Option(help="Id map of the old FAISS index (faiss_id -> id).")] = None,
        also: Annotated[Optional[list[str]], typer.Option("--also", help="Extra migration output reported beside new, NAME=OUT_DIR (repeatable), e.g. a late-chunked run; repeated ids = chunks, scored by their best chunk.")] = None,
        queries: Annotated[OptPath, typer.Option(help="Queries: JSONL, CSV or TSV (id + text), or a BEIR folder.")] = None,
        qrels: Annotated[OptPath, typer.Option(help="Relevance judgments: BEIR qrels TSV or TREC qrels (optional).")] = None,
        docs: Annotated[OptPath, typer.Option("--docs", "--corpus", help="Documents (a documents file or a BEIR corpus.jsonl): result snippets, or a side built from a model (--corpus is an alias).")] = None,
        beir: Annotated[OptPath, typer.Option(help="BEIR dataset folder: sets --queries, --qrels (split) and --docs.")] = None,
        split: Annotated[str, typer.Option(help="qrels split inside a BEIR folder.")] = "test",
        k: Annotated[int, typer.Option("-k", "--k", help="Cut-off for overlap, rank shifts and shown lists.")] = 10,
        dims: Annotated[OptStr, typer.Option(help="Matryoshka sweep of the new vectors, e.g. 1024,512,256,128,64.")] = None,
        precisions: Annotated[OptStr, typer.Option(help="Storage precisions swept at each size (with --dims), e.g. float32,float16,int8,binary,binary+rescore: nDCG@10 and bytes per vector.")] = None,
        ann: Annotated[bool, typer.Option("--ann", help="Also evaluate each side's built ANN index against exact search.")] = False,
        nprobe: Annotated[Optional[int], typer.Option(help="IVF nprobe for --ann.")] = None,
        ef_search: Annotated[Optional[int], typer.Option(help="HNSW efSearch for --ann.")] = None,
        examples: Annotated[int, typer.Option(help="Queries shown side by side.")] = 8,
        fail_if: Annotated[Optional[list[str]], typer.Option("--fail-if", help="Gate, repeatable: 'verdict == worse', 'knownitem == regression', 'judged.ndcg@10 < old', 'ndcg@10 < old - 0.01' (with --qrels). Exit code 7 when one holds.")] = None,
        report_dir: Annotated[Path, typer.Option(help="Where report.html/.md/.json and TREC run files go.")] = Path("compare-report"),
        html: Annotated[OptPath, typer.Option(help="HTML report path (default REPORT_DIR/report.html).")] = None,
        markdown: Annotated[OptPath, typer.Option(help="Markdown path (default REPORT_DIR/report.md).")] = None,
        json_path: Annotated[OptPath, typer.Option("--json-out", help="JSON report path (default REPORT_DIR/report.json).")] = None,
        github_summary: Annotated[bool, typer.Option("--github-summary/--no-github-summary", help="Append the Markdown to $GITHUB_STEP_SUMMARY when it is set.")] = True,
        cache: Annotated[OptPath, typer.Option(help="Cache for corpus vectors of model-built sides.")] = None,
        base_url: Annotated[OptStr, typer.Option(help="Send every API request (old and new side) to this base URL; default $JINA_API_BASE_URL, else the Jina API.")] = None,
        api_key_env: Annotated[OptStr, typer.Option(help="Environment variable holding the API key (default JINA_API_KEY).")] = None,
        api_key_file: Annotated[OptPath, typer.Option(help="File holding the API key (instead of the environment).")] = None,
        title: Annotated[OptStr, typer.Option(help="Report title.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")] = False,
        title_field: Annotated[OptStr, typer.Option(help="Title field of --docs (as in run; default: the one the --new output's run joined). Kept apart for the known-item guard.")] = None,
        judge: Annotated[OptStr, typer.Option(help="Grade both sides' pooled top-k with a judge: jina-api:jina-reranker-v2-base-multilingual, jina-api:jina-reranker-v3, local:PATH (a CrossEncoder folder) or llm:MODEL (with --judge-base-url). Needs --docs or collections with text.", rich_help_panel="Label-free evidence")] = None,
        judge_base_url: Annotated[OptStr, typer.Option(help="Where the judge's requests go (default for jina-api: --base-url; required for llm:).", rich_help_panel="Label-free evidence")] = None,
        judge_option: Annotated[Optional[list[str]], typer.Option(help="Judge option, key=value (repeatable), e.g. max_retries=2, tier=tier2.", rich_help_panel="Label-free evidence")] = None,
        known_item: Annotated[Optional[bool], typer.Option("--known-item/--no-known-item", help="Known-item regression guard (a title or sentence taken out of its document; both sides re-embed the shortened documents). Default: on without --qrels.", rich_help_panel="Label-free evidence")] = None,
        known_item_sample: Annotated[int, typer.Option(help="Documents the known-item guard samples.", rich_help_panel="Label-free evidence")] = 300,
        known_item_kind: Annotated[str, typer.Option(help="Known-item query: auto (the title where there is one, else a sentence), title or sentence.", rich_help_panel="Label-free evidence")] = "auto",
        seed: Annotated[int, typer.Option(help="Seed of the known-item sample and of the query-log sample.", rich_help_panel="Label-free evidence")] = 0,
        labels: Annotated[OptPath, typer.Option(help="Human labels of pooled pairs (jina-migrate label): combined with --judge by prediction-powered inference, or used alone.", rich_help_panel="Label-free evidence")] = None,
        query_sample: Annotated[Optional[int], typer.Option(help="Without --qrels: use this many queries of the log, drawn by --seed (default: all, repeats removed).", rich_help_panel="Label-free evidence")] = None,
        show_queries: Annotated[bool, typer.Option("--show-queries", help="Without --qrels: show the logged queries' text in the reports (default: ids only).", rich_help_panel="Label-free evidence")] = False,
        pool_out: Annotated[OptPath, typer.Option(help="Write the pooled (query, document) pairs with their text to this file, for jina-migrate label (private: it holds text).", rich_help_panel="Label-free evidence")] = None,
    ) -> None:
        """Compare retrieval on the old and the new index: metrics, overlap, Matryoshka sweep, gates."""
        from migrate.report.gates import raise_if_failed
        from migrate.report.render_json import render_json
        from migrate.report.precision_sweep import parse_precisions
        from migrate.secrets import redact

        swept = parse_precisions(precisions)  # a bad name is refused before any model loads
        report, written = run_compare(
            new=_side_path("--new", new), new_model=new_model, new_task=new_task, new_doc_task=new_doc_task,
            new_options=_options(new_option, "--new-option"), old=_side_path("--old-index", old_index), old_model=old_model, old_task=old_task,
            old_doc_task=old_doc_task, old_options=_options(old_option, "--old-option"), id_map=id_map,
            queries=queries, qrels=qrels, corpus=docs, beir=beir, split=split, k=k, dims=_dims(dims), ann=ann,
            nprobe=nprobe, ef_search=ef_search, examples=examples, fail_if=fail_if or [], report_dir=report_dir,
            html=html, markdown=markdown, json_path=json_path, github_summary=github_summary, cache=cache,
            title=title, base_url=base_url, also=also, api_key_env=api_key_env, api_key_file=api_key_file,
            judge=judge, judge_base_url=judge_base_url, judge_options=_options(judge_option, "--judge-option"),
            known_item=known_item, known_item_sample=known_item_sample, known_item_kind=known_item_kind, seed=seed,
            labels=labels, query_sample=query_sample, show_queries=show_queries, title_field=title_field,
            pool_out=pool_out, precisions=swept)
        if json_out:
            typer.echo(redact(render_json(report)), nl=False)
        else:
            _print_summary(report, written)
        raise_if_failed(report.gates)
