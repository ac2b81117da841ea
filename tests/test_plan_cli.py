"""`jina-migrate plan` and `models` as a user runs them: the installed console script in a child process.

Each user mistake gives exactly one `error:` line on stderr, its documented exit code and no
traceback; the bundled sample plans cleanly exactly as the README shows it; plan findings
have their own exit code (8), apart from quality gates (7).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.errors import GateFailed, PlanFindings

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fixtures" / "sample"
README_PLAN = ["plan", "--docs", "fixtures/sample/docs.jsonl", "--title-field", "title",
               "--old-index", "fixtures/sample/old_index.faiss", "--id-map", "fixtures/sample/id_map.csv"]


def console_script() -> str:
    beside = Path(sys.executable).with_name("jina-migrate")
    found = str(beside) if beside.exists() else shutil.which("jina-migrate")
    if not found:
        pytest.skip("the jina-migrate console script is not installed")
    return found


def jm(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """``jina-migrate ARGS`` through the installed console script, importing this checkout."""
    e = dict(os.environ) | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])} | (env or {})
    return subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


def one_error(r: subprocess.CompletedProcess, code: int) -> str:
    """Assert a clean refusal; return the one `error:` line."""
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def findings(plan: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in plan["findings"]}


# ----------------------------------------------------------------------------- the bundled sample


def test_readme_plan_on_the_sample_exits_0():
    r = jm(*README_PLAN)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "dims-mismatch" not in r.stdout
    assert "custom-source-model" in r.stdout  # the 384-d stand-in index is reported, not refused


def test_readme_plan_with_use_case_price_and_outputs_exits_0(tmp_path):
    for name in ("docs.jsonl", "old_index.faiss", "id_map.csv"):
        (tmp_path / "fixtures" / "sample").mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / name, tmp_path / "fixtures" / "sample" / name)
    r = jm(*README_PLAN, "--use-case", "search", "--price-per-million", "0.05", "--out", "plan.json",
           "--markdown", "plan.md", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["summary"]["worst_severity"] == "info"
    assert plan["models"]["source"]["generation"] == "custom" and plan["models"]["source"]["dimensions"] == 384
    assert plan["mapping"]["document_task"] == "retrieval.passage" and plan["cost"]["price_per_million"] == 0.05
    assert plan["sources"]["validation"]["old_vectors"] == 320
    assert "`custom-source-model`" in (tmp_path / "plan.md").read_text()


@pytest.mark.parametrize("declared,name", [("custom:384", "custom (384-d)"), ("custom:minilm-v2-stand-in:384",
                                                                                  "minilm-v2-stand-in")])
def test_declared_custom_source_model_is_reported_not_refused(declared, name):
    r = jm(*README_PLAN, "--from-model", declared, "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["mapping"]["source_model"] == name and plan["sources"]["source_model_from"] == "--from-model"
    assert findings(plan)["custom-source-model"] == "info"


@pytest.mark.parametrize("declared", ["base-en", "custom:768"])
def test_declared_model_of_another_width_is_still_an_error_with_its_own_exit_code(declared):
    r = jm(*README_PLAN, "--from-model", declared, "--markdown", "-")
    line = one_error(r, 8)
    assert "dims-mismatch" in line and "`dims-mismatch`" in r.stdout
    assert "custom:NAME:384" in r.stdout  # the fix says how to declare the real model


@pytest.mark.parametrize("declared", ["custom:abc", "custom:0", "custom::384", "custom:a:b:384", "base-fr"])
def test_malformed_from_model_is_one_error_line(declared):
    line = one_error(jm(*README_PLAN, "--from-model", declared), 2)
    assert "--from-model" in line or "unknown model" in line


def test_plan_findings_and_quality_gates_have_different_exit_codes():
    assert PlanFindings.exit_code == 8 and GateFailed.exit_code == 7


# ----------------------------------------------------------------------------- the same validation as run


def test_custom_faiss_ids_without_id_map_are_reported_like_run_refuses_them(tmp_path):
    no_map = [a for a in README_PLAN if a not in ("--id-map", "fixtures/sample/id_map.csv")]
    run = jm("run", *no_map[1:], "--out", str(tmp_path / "out"), "--model", "local:standin:static", "--yes")
    run_line = one_error(run, 2)
    assert "1001" in run_line  # run refuses: the index's own ids name no document
    r = jm(*no_map, "--json")
    line = one_error(r, 8)
    assert "faiss-ids-unmapped" in line
    plan = json.loads(r.stdout)
    f = next(x for x in plan["findings"] if x["code"] == "faiss-ids-unmapped")
    assert f["severity"] == "error" and "1001" in f["message"] and "no document" in f["message"]
    assert "--id-map" in f["fix"] and "--faiss-id-field" in f["fix"]
    assert plan["sources"]["validation"] is None


# ----------------------------------------------------------------------------- user mistakes


def test_a_file_that_is_not_a_tokenizer_is_one_error_line():
    line = one_error(jm(*README_PLAN, "--tokenizer", "fixtures/sample/docs.jsonl"), 2)
    assert "fixtures/sample/docs.jsonl" in line and "not a tokenizer" in line and "tokenizer.json" in line


def test_a_folder_without_a_tokenizer_is_one_error_line(tmp_path):
    line = one_error(jm(*README_PLAN, "--tokenizer", str(tmp_path)), 2)
    assert str(tmp_path) in line and "tokenizer.json" in line


@pytest.mark.parametrize("args,needle", [
    (["--on-missing", "maybe"], "--on-missing"),
    (["--rpm", "0"], "--rpm"),
    (["--fail-on", "sometimes"], "--fail-on"),
    (["--deployment", "cloud"], "--deployment"),
])
def test_bad_plan_values_are_one_error_line(args, needle):
    assert needle in one_error(jm(*README_PLAN, *args), 2)


# ----------------------------------------------------------------------------- help and tables


def test_every_plan_and_models_option_has_help_and_no_bool_placeholder():
    import typer

    from migrate.commands import plan as plan_commands

    app = typer.Typer()
    plan_commands.register(app)
    group = typer.main.get_command(app)
    for name in ("plan", "models"):
        for param in group.commands[name].params:
            if param.name != "help":
                assert (param.help or "").strip(), f"{name} {param.opts} has no help text"
    tier = next(p for p in group.commands["plan"].params if p.name == "tier")
    assert "conservative (default)" in tier.help
    for name in ("plan", "models"):
        r = jm(name, "--help", env={"COLUMNS": "200"})
        assert r.returncode == 0, r.stderr
        # typer's own --help option is the CLI-wide fix's business; every option declared here has no placeholder
        placeholders = [line for line in r.stdout.splitlines() if "<bool>" in line and "--help" not in line]
        assert not placeholders, placeholders
    assert "--late-chunking" in jm("plan", "--help", env={"COLUMNS": "200"}).stdout


def test_models_piped_is_one_line_per_model():
    from migrate.models import CATALOGUE

    r = jm("models")
    assert r.returncode == 0, r.stderr
    for m in CATALOGUE.values():
        rows = [line for line in r.stdout.splitlines() if f" {m.name} " in line]
        assert len(rows) == 1, (m.name, r.stdout)
        assert str(m.dimensions) in rows[0] and m.license in rows[0]  # the whole row, unwrapped


@pytest.mark.parametrize("width", [160, 120, 80, 50])
def test_models_on_a_terminal_never_split_a_name(width):
    from rich.console import Console

    from migrate.commands.plan import render_models
    from migrate.models import CATALOGUE

    con = Console(width=width, force_terminal=True, record=True, color_system=None)
    render_models(con)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    for m in CATALOGUE.values():
        assert m.name in text, (width, m.name, text)
    if width >= 120:
        assert "┃ model" in text  # wide enough for the table itself


def test_plan_tables_on_a_terminal_never_split_a_name():
    from rich.console import Console

    from migrate.planning import PlanOptions, build_plan, render_terminal

    plan = build_plan(PlanOptions(documents=SAMPLE / "docs.jsonl", title_field="title", from_model="base-en",
                                  old_index=SAMPLE / "old_index.faiss"))  # index without id map: two errors
    names = [f["code"] for f in plan["findings"]] + [r["setting"] for r in plan["mapping"]["reasons"]]
    assert "dims-mismatch" in names and "faiss-ids-unmapped" in names
    for width in (200, 100, 60):
        con = Console(width=width, force_terminal=True, record=True, color_system=None)
        render_terminal(plan, con)
        text = con.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        for name in names + ["jina-embeddings-v3", "text-matching"]:
            assert name in text, (width, name)


# ----------------------------------------------------------------------------- the same settings layers as run

def test_plan_reads_the_toml_file_and_environment_like_run(tmp_path):
    """A CI job that sets JINA_MIGRATE_DIMENSIONS (or passes --config run.toml) plans what run will do."""
    docs = str(REPO / "fixtures/sample/docs.jsonl")
    r = jm("plan", "--docs", docs, "--json", env={"JINA_MIGRATE_DIMENSIONS": "256"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_config"]["dimensions"] == 256
    cfg = tmp_path / "run.toml"
    cfg.write_text('[migrate]\ndimensions = 512\nout = "runs/x"\n')  # `out` is run's: plan leaves it alone
    r = jm("plan", "--docs", docs, "--config", str(cfg), "--json", env={"JINA_MIGRATE_DIMENSIONS": "256"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_config"]["dimensions"] == 512  # the file wins over the environment
    r = jm("plan", "--docs", docs, "--config", str(cfg), "--dimensions", "768", "--json")
    assert json.loads(r.stdout)["run_config"]["dimensions"] == 768  # the flag wins over the file
    assert one_error(jm("plan", "--docs", docs, env={"JINA_MIGRATE_DIMENSIONS": "abc"}), 2) == \
        "error: JINA_MIGRATE_DIMENSIONS: expected a whole number, got 'abc'"
    cfg.write_text("[migrate]\ndimensions = 31.9\n")
    assert f"{cfg}: dimensions: expected a whole number" in one_error(jm("plan", "--docs", docs, "--config", str(cfg)), 2)
