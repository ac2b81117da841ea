"""The catalogue (migrate.models) and the mapping rules and warnings (migrate.planning.mapping), one test per rule."""

from __future__ import annotations

import pytest

from migrate.models import TASK_NONE, V3_TASK_PREFIXES
from migrate.errors import ConfigError
from migrate.models import (CATALOGUE, USE_CASES, V3_MATRYOSHKA_DIMS, custom_model, get_model, source_model,
                            task_for_use_case)
from migrate.planning.mapping import TokenFacts, map_v2_to_v3


def codes(m):
    return {f.code: f.severity for f in m.findings}


def reason(m, setting):
    return next(r for r in m.reasons if r.setting == setting)


def test_catalogue_has_every_v2_model_and_v3():
    names = set(CATALOGUE)
    for short in ("small-en", "base-en", "base-de", "base-es", "base-zh", "base-code"):
        assert f"jina-embeddings-v2-{short}" in names
    v3 = get_model("v3")
    assert v3.dimensions == 1024 and v3.max_tokens == 8192 and v3.license == "CC BY-NC 4.0"
    assert get_model("small-en").dimensions == 512 and get_model("base-en").dimensions == 768
    assert v3.tokenizer_family == "xlm-roberta" and get_model("base-en").tokenizer_family == "bert-uncased"
    assert tuple(v3.matryoshka_dims) == V3_MATRYOSHKA_DIMS


@pytest.mark.parametrize("alias", ["base-en", "v2-base-en", "jina-embeddings-v2-base-en", "JinaAI/jina-embeddings-v2-base-en", " Base-EN "])
def test_aliases(alias):
    assert get_model(alias).name == "jina-embeddings-v2-base-en"


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'base-fr'") as e:
        get_model("base-fr")
    assert "jina-embeddings-v2-base-de" in str(e.value)


def test_default_task_is_text_matching_and_hints_at_retrieval():
    m = map_v2_to_v3("base-en")
    assert m.document_task == m.query_task == "text-matching"
    assert "symmetric" in reason(m, "document_task").why
    assert codes(m)["retrieval-index-hint"] == "info"
    assert "retrieval.query" in m.finding("retrieval-index-hint").fix


@pytest.mark.parametrize("use_case,doc,query", [
    ("search", "retrieval.passage", "retrieval.query"),
    ("deduplication", "text-matching", "text-matching"),
    ("sts", "text-matching", "text-matching"),
    ("classification", "classification", "classification"),
    ("clustering", "separation", "separation"),
])
def test_use_case_picks_the_task(use_case, doc, query):
    m = map_v2_to_v3("base-en", use_case=use_case)
    assert (m.document_task, m.query_task) == (doc, query)
    assert task_for_use_case(use_case) == doc
    assert f"--use-case {use_case}" in reason(m, "document_task").why


def test_search_says_queries_must_be_reembedded_with_query_task():
    m = map_v2_to_v3("base-en", use_case="search")
    assert "re-embedded with retrieval.query" in reason(m, "query_task").why
    assert m.finding("queries-need-query-task") is not None
    assert m.document_prefix == V3_TASK_PREFIXES["retrieval.passage"]
    assert m.query_prefix == V3_TASK_PREFIXES["retrieval.query"]


def test_classification_needs_no_label_rephrasing():
    m = map_v2_to_v3("base-en", use_case="classification")
    assert "no rephrasing" in reason(m, "document_task").why


def test_task_none_only_when_asked_and_warned():
    assert all(map_v2_to_v3("base-en", use_case=u).document_task != TASK_NONE for u in USE_CASES)
    m = map_v2_to_v3("base-en", task="none")
    assert m.document_task == TASK_NONE
    assert codes(m)["task-none"] == "warning"


def test_query_task_for_documents_warns_and_passage_implies_query():
    assert codes(map_v2_to_v3("base-en", task="retrieval.query"))["query-task-for-documents"] == "warning"
    assert map_v2_to_v3("base-en", task="retrieval.passage").query_task == "retrieval.query"


def test_contradictory_or_unknown_flags_are_config_errors():
    with pytest.raises(ConfigError, match="contradicts"):
        map_v2_to_v3("base-en", use_case="search", task="text-matching")
    with pytest.raises(ConfigError, match="unknown --use-case"):
        map_v2_to_v3("base-en", use_case="ranking")
    with pytest.raises(ConfigError, match="unknown --task"):
        map_v2_to_v3("base-en", task="retrieval")
    with pytest.raises(ConfigError, match="not a v2 model"):
        map_v2_to_v3("v3")


def test_dimensions_default_768_other_sizes_and_range():
    assert map_v2_to_v3("base-en").dimensions == 1024
    m = map_v2_to_v3("base-en", dimensions=768)
    assert "still NOT compatible" in reason(m, "dimensions").why
    assert codes(m)["same-width-not-compatible"] == "info"
    m = map_v2_to_v3("small-en", dimensions=512)  # small-en's own width
    assert "same-width-not-compatible" in codes(m)
    m = map_v2_to_v3("base-en", dimensions=256)
    assert "Matryoshka" in reason(m, "dimensions").why and "dims-not-matryoshka" not in codes(m)
    assert codes(map_v2_to_v3("base-en", dimensions=300))["dims-not-matryoshka"] == "warning"
    for bad in (0, 1025):
        with pytest.raises(ConfigError, match="outside 1..1024"):
            map_v2_to_v3("base-en", dimensions=bad)


def test_normalized_is_dropped_with_a_reason():
    m = map_v2_to_v3("base-en")
    assert reason(m, "normalized").value == "dropped"
    assert m.as_dict()["normalized"] == "dropped"


def test_late_chunking_reason_mentions_request_limit():
    m = map_v2_to_v3("base-en", late_chunking=True)
    assert m.late_chunking and "8192" in reason(m, "late_chunking").why


def test_code_model_warns_to_stay_or_measure():
    m = map_v2_to_v3("base-code")
    f = m.finding("code-model")
    assert f.severity == "warning" and "0.7753" in f.message and "compare" in f.fix
    assert "code-model" not in codes(map_v2_to_v3("base-en"))


@pytest.mark.parametrize("name", ["base-de", "base-es", "base-zh"])
def test_bilingual_models_are_flagged_obsolete(name):
    f = map_v2_to_v3(name).finding("bilingual-model")
    assert f.severity == "warning" and "obsolete" in f.message and "multilingual" in f.message
    assert "bilingual-model" not in codes(map_v2_to_v3("base-en"))


def test_licence_warning_only_for_local_commercial_use():
    assert "license-cc-by-nc" not in codes(map_v2_to_v3("base-en"))
    assert codes(map_v2_to_v3("base-en", deployment="local"))["license-cc-by-nc"] == "warning"
    assert codes(map_v2_to_v3("base-en", deployment="local", commercial=False))["license-cc-by-nc"] == "info"


def test_dims_mismatch_is_an_error_naming_candidates():
    f = map_v2_to_v3("base-en", index_dim=512).finding("dims-mismatch")
    assert f.severity == "error" and "512-d" in f.message and "jina-embeddings-v2-small-en" in f.fix
    assert map_v2_to_v3("base-en", index_dim=768).finding("dims-mismatch") is None


def test_long_documents_error_without_truncation_warning_with():
    facts = TokenFacts(n_over_limit=3, max_tokens=12000)
    assert codes(map_v2_to_v3("base-en", tokens=facts))["long-documents"] == "error"
    f = map_v2_to_v3("base-en", tokens=facts, truncate=True).finding("long-documents")
    assert f.severity == "warning" and "3 document(s)" in f.message and "truncated" in f.message
    f = map_v2_to_v3("base-en", tokens=facts, late_chunking=True, truncate=True).finding("long-documents")
    assert f.severity == "error" and "late-chunking" in f.message  # truncation cannot help a late-chunking request
    est = map_v2_to_v3("base-en", tokens=TokenFacts(1, 9000, exact=False), truncate=True).finding("long-documents")
    assert "(estimated)" in est.message
    assert map_v2_to_v3("base-en", tokens=TokenFacts(0, 500)).finding("long-documents") is None


# --------------------------------------------------------------------------- models outside the catalogue


@pytest.mark.parametrize("spec,name,dims", [("custom:384", "custom (384-d)", 384),
                                            ("custom:my-finetune:768", "my-finetune", 768),
                                            (" CUSTOM:e5:1024 ", "e5", 1024)])
def test_custom_source_models_are_declared_by_width_and_name(spec, name, dims):
    m = source_model(spec)
    assert (m.name, m.dimensions, m.generation) == (name, dims, "custom")
    assert source_model("base-en") is get_model("base-en")


@pytest.mark.parametrize("spec", ["custom:", "custom:x", "custom:0", "custom:-5", "custom::384", "custom:a:b:384",
                                  "custom:99999999"])
def test_malformed_custom_models_are_config_errors(spec):
    with pytest.raises(ConfigError, match="--from-model"):
        source_model(spec)


def test_custom_source_maps_to_v3_and_only_a_width_mismatch_is_an_error():
    m = map_v2_to_v3("custom:minilm:384", index_dim=384)
    assert m.source.name == "minilm" and m.target.name == "jina-embeddings-v3" and "dims-mismatch" not in codes(m)
    assert codes(map_v2_to_v3("custom:minilm:384", index_dim=768))["dims-mismatch"] == "error"
    with pytest.raises(ConfigError, match="not a v2 model"):
        map_v2_to_v3("v3")


def test_a_local_model_that_is_not_v3_is_planned_with_its_own_width_limit_and_prompts():
    target = custom_model(384, "e5-like", max_tokens=512)
    prompts = {"retrieval.passage": "passage: ", "retrieval.query": "query: ", "text-matching": ""}
    m = map_v2_to_v3("base-en", use_case="search", target=target, prefixes=prompts,
                     tokens=TokenFacts(n_over_limit=3, max_tokens=900))
    assert m.dimensions == 384 and m.document_prefix == "passage: " and m.query_prefix == "query: "
    assert codes(m)["task-ignored"] == "info" and "passage: " in m.finding("task-ignored").message
    assert codes(m)["long-documents"] == "warning" and "512" in m.finding("long-documents").message
    assert "license-cc-by-nc" not in codes(map_v2_to_v3("base-en", target=target, deployment="local"))
    assert map_v2_to_v3("base-en", target=target, dimensions=128).dimensions == 128
    with pytest.raises(ConfigError, match="not possible for e5-like"):
        map_v2_to_v3("base-en", target=target, dimensions=1024)
    bare = map_v2_to_v3("base-en", target=target, prefixes={"text-matching": ""})
    assert "ignored" in bare.finding("task-ignored").message
