"""The catalogue (migrate.models) and the mapping rules and warnings (migrate.planning.mapping), one test per rule."""

from __future__ import annotations

import pytest

from migrate.embed.base import TASK_NONE, V3_TASK_PREFIXES
from migrate.errors import ConfigError
from migrate.models import CATALOGUE, USE_CASES, V3_MATRYOSHKA_DIMS, get_model, task_for_use_case
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
