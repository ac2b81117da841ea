"""The planner end to end: fixture indexes for each rule, outputs, CI exit codes, reproducibility,
and `run --plan` executing exactly the reviewed plan."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.errors import InputError, PlanFindings, StateError
from migrate.planning import (PLAN_SCHEMA, PlanOptions, build_plan, check_plan_matches, deterministic_part, gate,
                              load_plan, render_markdown)
from migrate.sources.fingerprint import fingerprint_sources

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("plan_fixtures", ROOT / "fixtures" / "plan" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_all(tmp_path_factory.mktemp("plan-fixtures"))


def plan(path: Path, **kw) -> dict:
    kw.setdefault("old_index", path)
    return build_plan(PlanOptions(documents=path, **kw))


def codes(p: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in p["findings"]}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items()} | {"HF_HUB_OFFLINE": "1"} | (env or {})
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True, env=e, cwd=ROOT,
                          timeout=300)


def test_code_index_warns_to_stay_or_measure(fx):
    p = plan(fx["code"], from_model="base-code")
    assert codes(p)["code-model"] == "warning"
    assert p["models"]["source"]["code"] is True


def test_bilingual_index_is_flagged(fx):
    p = plan(fx["bilingual_de"], from_model="base-de")
    assert codes(p)["bilingual-model"] == "warning"
    assert "dims-mismatch" not in codes(p)


def test_over_long_documents_are_counted(fx):
    p = plan(fx["long_docs"], from_model="base-en")
    t = p["tokens"]
    assert t["n_over_limit"] == 2 and t["over_limit_exact"] and t["max_tokens"] > 8192
    assert codes(p)["long-documents"] == "error"
    q = plan(fx["long_docs"], from_model="base-en", truncate=True)
    assert codes(q)["long-documents"] == "warning"
    assert q["tokens"]["billed"] < q["tokens"]["total"]
    assert q["tokens"]["billed"] == sum(min(s["tokens"], 10 ** 9) for s in q["shards"]["list"])


def test_dims_mismatch_is_an_error(fx):
    p = plan(fx["dims_mismatch"], from_model="base-en")
    assert codes(p)["dims-mismatch"] == "error"
    assert p["sources"]["old_index"]["dim"] == 384


def test_source_model_inferred_or_assumed(fx):
    assert plan(fx["long_docs"])["sources"]["source_model_from"] == "assumed"
    assert codes(plan(fx["long_docs"]))["source-model-assumed"] == "warning"
    p = build_plan(PlanOptions(documents=fx["dims_mismatch"]))  # 384-d vectors in the docs match no v2 model
    assert p["mapping"]["source_model"] == "custom (384-d)" and p["models"]["source"]["generation"] == "custom"
    assert codes(p)["custom-source-model"] == "info" and "dims-mismatch" not in codes(p)


def test_predictions_cost_time_storage_requests(fx):
    p = plan(fx["bilingual_de"], from_model="base-de", price_per_million=0.05, tier="free", shard_size=3,
             inputs_per_request=2)
    n, billed = p["sources"]["documents"], p["tokens"]["billed"]
    assert p["cost"]["total"] == round(billed / 1e6 * 0.05, 4)
    assert p["shards"]["count"] == 3 and [s["stop"] - s["start"] for s in p["shards"]["list"]] == [3, 3, 2]
    assert p["requests"]["total"] == 2 + 2 + 1  # per shard, at most 2 inputs each
    free = p["api_time"]["by_tier"]["free"]
    assert p["api_time"]["chosen"] == free
    assert free["seconds"] == round(max(5 / 500, billed / 1_000_000) * 60, 1)
    rows = {(r["dimensions"], r["format"]): r for r in p["storage"]["options"]}
    assert rows[(1024, "float32")]["vectors_bytes"] == n * 1024 * 4
    assert rows[(1024, "float16")]["vectors_bytes"] == n * 1024 * 2
    assert rows[(1024, "binary")]["vectors_bytes"] == n * 1024 // 8
    assert rows[(256, "float32")]["faiss_index_bytes"] == n * 256 * 4 + n * 8
    assert p["cost"] is not None and plan(fx["bilingual_de"], from_model="base-de")["cost"] is None


def test_late_chunking_one_request_per_document(fx):
    p = plan(fx["long_docs"], from_model="base-en", late_chunking=True, truncate=True)
    assert p["requests"]["total"] == p["sources"]["documents"]  # one request per document
    assert codes(p)["long-documents"] == "error"


def test_same_inputs_same_json(fx):
    a = plan(fx["code"], from_model="base-code", price_per_million=1.0)
    b = plan(fx["code"], from_model="base-code", price_per_million=1.0)
    assert json.dumps(deterministic_part(a), sort_keys=True) == json.dumps(deterministic_part(b), sort_keys=True)
    assert a["plan_sha256"] == b["plan_sha256"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(json.dumps(a)), PLAN_SCHEMA)
    c = plan(fx["code"], from_model="base-code", price_per_million=2.0)
    assert c["plan_sha256"] != a["plan_sha256"]


def test_estimate_path_is_labelled(fx):
    p = plan(fx["bilingual_de"], from_model="base-de", estimate_only=True)
    assert p["tokens"]["method"] == "estimate" and p["tokens"]["tokenizer"] is None
    assert codes(p)["tokens-estimated"] == "info"
    assert "ESTIMATE" in render_markdown(p)


def test_markdown_has_every_section(fx):
    md = render_markdown(plan(fx["code"], from_model="base-code"))
    for head in ("## jina-migrate plan", "### Findings", "### Settings and reasons", "### API wall time",
                 "### Storage"):
        assert head in md
    assert "`code-model`" in md and "| 1024 (chosen) |" in md


def test_gate_policy(fx):
    p = plan(fx["code"], from_model="base-code")  # a warning, no error
    gate(p, "error")
    gate(p, "never")
    with pytest.raises(PlanFindings, match="code-model"):
        gate(p, "warning")


def test_load_plan_and_source_check(fx, tmp_path):
    docs = tmp_path / "docs.parquet"
    docs.write_bytes(fx["code"].read_bytes())
    p = build_plan(PlanOptions(documents=docs, from_model="base-code"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(p))
    loaded = load_plan(path)
    check_plan_matches(loaded, fingerprint_sources([docs, None, None]))
    docs.write_bytes(fx["bilingual_de"].read_bytes())
    with pytest.raises(StateError, match="changed since the plan was made"):
        check_plan_matches(loaded, fingerprint_sources([docs, None, None]))
    edited = dict(loaded, run_config=dict(loaded["run_config"], dimensions=64))
    path.write_text(json.dumps(edited))
    with pytest.raises(StateError, match="edited"):
        load_plan(path)
    path.write_text(json.dumps({"tool": "something-else"}))
    with pytest.raises(InputError, match="not a jina-migrate plan"):
        load_plan(path)


def test_cli_outputs_and_exit_codes(fx, tmp_path):
    md = tmp_path / "summary.md"
    out = tmp_path / "plan.json"
    r = cli("plan", "--docs", str(fx["code"]), "--old-index", str(fx["code"]), "--from-model", "base-code",
            "--out", str(out), "--json", "--step-summary",
            env={"GITHUB_STEP_SUMMARY": str(md), "JINA_API_KEY": "jina_plan_secret_4242"})
    assert r.returncode == 0, r.stderr
    for text in (r.stdout, r.stderr, out.read_text(), md.read_text()):
        assert "jina_plan_secret_4242" not in text  # no key is read, none can leak
    assert json.loads(r.stdout)["plan_sha256"] == json.loads(out.read_text())["plan_sha256"]
    assert "## jina-migrate plan" in md.read_text()
    r = cli("plan", "--docs", str(fx["code"]), "--from-model", "base-code", "--fail-on", "warning")
    assert r.returncode == 8 and "code-model" in r.stderr and "Traceback" not in r.stderr
    r = cli("plan", "--docs", str(fx["dims_mismatch"]), "--old-index", str(fx["dims_mismatch"]),
            "--from-model", "base-en", "--markdown", "-")
    assert r.returncode == 8 and "dims-mismatch" in r.stdout
    r = cli("plan", "--docs", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
    r = cli("models", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["models"]) == 7
    r = cli("plan", "--schema")
    assert r.returncode == 0 and json.loads(r.stdout)["title"] == "jina-migrate plan"


def test_local_calibration_predicts_time(fx):
    pytest.importorskip("static_model")
    p = plan(fx["bilingual_de"], from_model="base-de", deployment="local", local_model="standin:static",
             calibration_seconds=0.5)
    cal = p["measured"]["local_calibration"]
    assert cal["predicted_seconds"] > 0 and cal["tokens_per_second"] > 0
    assert cal["sample_docs"] == 8  # all of the 8 docs fit in the calibration
    assert p["local_time"]["corpus_model_tokens"] > 0
    # the static stand-in is not v3: no v3 licence finding, its own width, and the task is reported as ignored
    assert "license-cc-by-nc" not in codes(p) and codes(p)["task-ignored"] == "info"
    assert p["mapping"]["dimensions"] == 64 and p["run_config"]["model"] == "local:standin:static"


def test_run_executes_the_reviewed_plan_and_refuses_changed_sources(fx, tmp_path):
    pytest.importorskip("static_model")
    docs = tmp_path / "docs.parquet"
    docs.write_bytes(fx["bilingual_de"].read_bytes())
    planfile = tmp_path / "plan.json"
    r = cli("plan", "--docs", str(docs), "--from-model", "base-de", "--deployment", "local", "--non-commercial",
            "--local-model", "standin:static", "--no-calibration", "--dimensions", "32",
            "--use-case", "search", "--out", str(planfile), "--fail-on", "never")
    assert r.returncode == 0, r.stderr
    assert json.loads(planfile.read_text())["measured"] is None  # nothing timed
    r = cli("run", "--plan", str(planfile), "--out", str(tmp_path / "out"), "--yes")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reviewed = json.loads(planfile.read_text())
    assert manifest["config"]["task"] == "retrieval.passage" and manifest["config"]["dimensions"] == 32
    assert manifest["config"]["model"] == "local:standin:static"
    # the same shards, by name (row range + content key), as the reviewed plan listed
    assert [s["name"] for s in manifest["plan"]["shards"]] == [s["name"] for s in reviewed["shards"]["list"]]
    docs.write_bytes(fx["code"].read_bytes())
    r = cli("run", "--plan", str(planfile), "--out", str(tmp_path / "out2"), "--yes")
    assert r.returncode == 3 and "changed since the plan was made" in r.stderr
