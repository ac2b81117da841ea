"""Typed settings: every layer checked strictly, one ConfigError naming the key and its source.

Covers issue 11 "Configuration types" (each value the issue lists, through the layer it came
from), the up-front checks of issue 11 "Bad values caught late" that need no model, and the
compatibility the pipeline relies on (manifest names, fingerprints, pickling for Ray workers).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from migrate.config import RunConfig, check_index_params, load_config
from migrate.errors import ConfigError, StateError


def toml(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(flags=None, toml_path=None, environ=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(flags or {}, toml_path, environ or {})
    return str(info.value)


# --------------------------------------------------------------------------- issue 11: configuration types

@pytest.mark.parametrize("text, key, expected", [
    ("shard = 3\n", "shard", "expected text I/N"),
    ("model = 5\n", "model", "expected text BACKEND:NAME"),
    ("base_url = 42\n", "base_url", "expected a URL as text"),
    ('normalized = "maybe"\n', "normalized", "expected true or false"),
    ("dimensions = 31.9\n", "dimensions", "expected a whole number"),
    ("shard_size = true\n", "shard_size", "expected a whole number"),
    ('normalized = "yes"\n', "normalized", "expected true or false"),  # words are for the environment only
    ("late_chunking = 1\n", "late_chunking", "expected true or false"),
    ('dimensions = "256"\n', "dimensions", "expected a whole number"),
    ("max_cost = true\n", "max_cost", "expected a number"),
    ("cache = 5\n", "cache", "expected a list of paths"),
    ("docs = [1, 2]\n", "docs", "expected a path"),
    ("task = 3\n", "task", "expected one of"),
])
def test_toml_values_keep_their_type(tmp_path, text, key, expected):
    msg = error_of(toml_path=toml(tmp_path, text))
    assert msg.startswith(f"{tmp_path / 'settings.toml'}: {key}: {expected}"), msg


def test_toml_migrate_must_be_a_table_and_keys_known(tmp_path):
    assert "migrate: expected a table" in error_of(toml_path=toml(tmp_path, "migrate = 5\n"))
    assert "unknown setting 'colour'" in error_of(toml_path=toml(tmp_path, '[migrate]\ncolour = "blue"\n'))
    twice = error_of(toml_path=toml(tmp_path, "[migrate]\nshard_size = 5\nshard-size = 6\n"))
    assert "given twice" in twice


def test_toml_reads_the_migrate_table_with_dashed_or_underscored_keys(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    cfg = load_config({}, toml(tmp_path, f'[migrate]\nshard-size = 5\nindex_type = "hnsw"\nhnsw-m = 16\n'
                                         f'cache = ["{tmp_path / "a"}", "{tmp_path / "b"}"]\n[other]\nx = 1\n'),
                      environ={})
    assert (cfg.shard_size, cfg.index_type, cfg.hnsw_m) == (5, "hnsw", 16)
    assert cfg.cache == [tmp_path / "a", tmp_path / "b"]
    assert cfg.where("hnsw_m") == f"{tmp_path / 'settings.toml'}: hnsw-m"


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("yes", True), ("NO", False),
                                             ("on", True), ("off", False), ("true", True), ("False", False)])
def test_environment_booleans_accept_the_usual_words(value, expected):
    assert load_config({}, None, {"JINA_MIGRATE_NORMALIZED": value}).normalized is expected


@pytest.mark.parametrize("name, value, expected", [
    ("NORMALIZED", "banana", "expected true or false (or 1/0, yes/no, on/off), got 'banana'"),
    ("NORMALIZED", "2", "expected true or false"),
    ("DIMENSIONS", "31.9", "expected a whole number"),
    ("DIMENSIONS", "1_024", "expected a whole number"),
    ("DIMENSIONS", "0x400", "expected a whole number"),
    ("SHARD_SIZE", "", "expected a whole number"),
    ("MAX_COST", "inf", "expected a number"),
    ("TIER", "gold", "expected one of conservative, free, tier1, tier2"),
    ("DOCS", "", "expected a path"),
])
def test_environment_text_is_parsed_exactly(name, value, expected):
    msg = error_of(environ={f"JINA_MIGRATE_{name}": value, "JINA_MIGRATE_PRICE_PER_MILLION": "1"})
    assert msg.startswith(f"JINA_MIGRATE_{name}: {expected}"), msg


@pytest.mark.parametrize("flag, value, expected", [
    ("dimensions", "31.0", "expected a whole number"),  # typer alone would make this 31
    ("dimensions", 31.0, "expected a whole number"),  # in-process callers too
    ("shard_size", True, "expected a whole number"),
    ("normalized", 1, "expected true or false"),
    ("normalized", "yes", "expected true or false"),
    ("out", "", "expected a path"),  # typer alone would make this '.'
    ("max_cost", "nan", "expected a number"),
    ("model", 5, "expected text BACKEND:NAME"),
])
def test_flags_are_not_coerced(flag, value, expected):
    msg = error_of({flag: value, "price_per_million": 1})
    assert msg.startswith(f"--{flag.replace('_', '-')}: {expected}"), msg


def test_the_error_names_the_layer_the_value_won_from(tmp_path):
    path = toml(tmp_path, "dimensions = 5000\n")
    assert error_of({"dimensions": "5000"}).startswith("--dimensions: ")
    assert error_of(toml_path=path).startswith(f"{path}: dimensions: ")
    assert error_of(environ={"JINA_MIGRATE_DIMENSIONS": "5000"}).startswith("JINA_MIGRATE_DIMENSIONS: ")
    # A lower layer's value that lost is not an error: the winning one is used.
    assert load_config({"dimensions": "256"}, path, {"JINA_MIGRATE_DIMENSIONS": "x"}).dimensions == 256


def test_precedence_flags_toml_environment_defaults(tmp_path):
    path = toml(tmp_path, '[migrate]\ntask = "retrieval.passage"\ntpm = 5000\n')
    env = {"JINA_MIGRATE_TASK": "separation", "JINA_MIGRATE_TPM": "7", "JINA_MIGRATE_RPM": "9",
           "JINA_MIGRATE_YES": "on"}
    cfg = load_config({"rpm": "11"}, path, env)
    assert (cfg.task, cfg.tpm, cfg.rpm, cfg.yes, cfg.shard_size) == ("retrieval.passage", 5000, 11, True, 1000)
    assert [cfg.where(k) for k in ("task", "rpm", "yes", "shard_size")] == [
        f"{path}: task", "--rpm", "JINA_MIGRATE_YES", "--shard-size"]


def test_jina_migrate_cache_is_not_the_cache_setting():
    # JINA_MIGRATE_CACHE names the stand-in models' cache folder; reading it as `cache` would
    # make every run reuse vectors from there.
    assert load_config({}, None, {"JINA_MIGRATE_CACHE": "/nonexistent/models"}).cache == []


def test_flags_none_means_not_given_and_unknown_names_are_refused():
    assert load_config({"dimensions": None, "task": None}, None, {}).task == "text-matching"
    assert "unknown setting 'colour'" in error_of({"colour": "blue"})


# --------------------------------------------------------------------------- issue 11: checks before anything is written

@pytest.mark.parametrize("flags, expected", [
    ({"dimensions": "1025"}, "--dimensions: 1025 is outside 32..1024"),
    ({"dimensions": "31"}, "--dimensions: 31 is outside 32..1024"),
    ({"model": "jina-api:jina-embeddings-v2-base-en", "dimensions": "32"}, "makes 768-d vectors"),
    ({"model": "jina-api:jina-embeddings-v2-small-en", "dimensions": "768"}, "makes 512-d vectors"),
    ({"model": "jina-api:jina-embeddings-v4"}, "--model: unknown Jina API model 'jina-embeddings-v4'"),
    ({"model": "jina-api:base-en"}, "jina-api:jina-embeddings-v2-base-en"),
    ({"model": "sentence-transformers:all-MiniLM"}, "unknown embedding backend"),
    ({"embedding_type": "int8"}, "--embedding-type: expected one of float, base64, binary, ubinary"),
    ({"tpm": "-1"}, "--tpm: must be at least 1"),
    ({"concurrency": "0"}, "--concurrency: must be at least 1"),
    ({"shard_size": "0"}, "--shard-size: must be at least 1"),
    ({"token_budget": "0"}, "--token-budget: must be at least 1"),
    ({"max_tokens": "-5"}, "--max-tokens: must be at least 1"),
    ({"hnsw_m": "-3"}, "--hnsw-m: must be at least 2"),
    ({"hnsw_m": "0"}, "--hnsw-m: must be at least 2"),
    ({"hnsw_m": "513"}, "--hnsw-m: must be at most 512"),
    ({"ivf_nlist": "0"}, "--ivf-nlist: must be at least 1"),
    ({"pq_nbits": "0"}, "--pq-nbits: must be at least 1"),
    ({"pq_nbits": "17"}, "--pq-nbits: must be at most 16"),
    ({"index_type": "ivfpq", "pq_m": "7"}, "--pq-m: 7 does not divide the 1024 output dimensions"),
    ({"index_type": "ivfpq", "pq_m": "10", "model": "jina-api:jina-embeddings-v2-base-en"}, "the 768 output"),
    ({"index_type": "ivfpq", "pq_m": "64", "dimensions": "32"}, "--pq-m: 64 does not divide the 32"),
    ({"index_type": "faiss"}, "--index-type: expected one of flat, hnsw, ivfpq"),
    ({"max_input_tokens": "512"}, "the Jina API always reads up to 8192 tokens"),
])
def test_refused_up_front(flags, expected):
    assert expected in error_of(flags)


def test_model_aware_checks_leave_valid_configurations_alone():
    ok = [{"dimensions": "32"}, {"dimensions": "1024"}, {"dimensions": "100"},
          {"model": "jina-api:jina-embeddings-v2-base-en", "dimensions": "768"},
          {"model": "local:/some/folder", "dimensions": "7"},  # the local model's width is known later
          {"index_type": "ivfpq", "pq_m": "8"}, {"index_type": "ivfpq", "pq_m": "7", "model": "local:x"},
          {"index_type": "hnsw", "hnsw_m": "2"}, {"index_type": "hnsw", "hnsw_m": "512"}]
    for flags in ok:
        load_config(flags, None, {})


def test_check_index_params_for_a_width_known_later():
    cfg = load_config({"model": "local:x", "index_type": "ivfpq", "pq_m": "7"}, None, {})
    with pytest.raises(ConfigError, match="--pq-m: 7 does not divide the 384 output dimensions"):
        check_index_params(cfg, 384)
    check_index_params(cfg, 448)  # 448 = 7 * 64
    small = load_config({"model": "local:x", "index_type": "ivfpq", "ivf_nlist": "64"}, None, {})
    with pytest.raises(ConfigError, match="needs at least 2496 vectors"):
        check_index_params(small, 384, rows=1000)
    check_index_params(small, 384, rows=2496)
    check_index_params(load_config({"model": "local:x"}, None, {}), 7, rows=1)  # flat: nothing to check


def test_files_that_must_exist(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "--cache: " in error_of({"cache": [str(tmp_path / "nope")]})
    assert "is not a directory" in error_of({"cache": [str(tmp_path / "file")]})
    assert "--api-key-file: " in error_of({"api_key_file": str(tmp_path / "key")})
    assert "--out: " in error_of({"out": str(tmp_path / "file")})
    cfg = load_config({"cache": [str(tmp_path)], "out": str(tmp_path / "new")}, None, {})
    assert cfg.cache == [tmp_path] and cfg.out == tmp_path / "new"


def test_cross_field_rules_name_the_source(tmp_path):
    path = toml(tmp_path, 'chunker = "tokens:64"\n')
    assert error_of(toml_path=path).startswith(f"{path}: chunker: a chunker only applies with late chunking")
    assert "needs --price-per-million" in error_of({"max_cost": "5"})
    assert load_config({"late_chunking": True}, None, {}).chunker == "sentences:3"
    assert load_config({"late_chunking": True, "chunker": "fixed:64"}, None, {}).chunker == "tokens:64"


def test_shard_and_worker():
    assert load_config({"shard": "2/4"}, None, {}).worker() == (2, 4)
    assert load_config({}, None, {}).worker() == (0, 1)
    for bad in ("4/4", "x", "1/0", "-1/4", " 1/4", "1 / 4"):
        assert "--shard: " in error_of({"shard": bad})


# --------------------------------------------------------------------------- what the pipeline relies on

def test_embedding_config_keeps_the_names_and_values_manifests_pin():
    from migrate.pipeline import config_fingerprint
    from migrate.shards import canonical_hash

    cfg = load_config({}, None, {})
    written_by_0_1_0 = {"model": "jina-api:jina-embeddings-v3", "task": "text-matching", "dimensions": None,
                        "normalized": True, "max_tokens": None, "late_chunking": False, "chunker": None,
                        "embedding_type": "float", "truncate": False}
    assert cfg.embedding_config() == written_by_0_1_0
    assert config_fingerprint(cfg) == canonical_hash(written_by_0_1_0)
    back = RunConfig.from_manifest(cfg.embedding_config(), out=Path("/tmp/x"))
    assert back.embedding_config() == written_by_0_1_0 and back.out == Path("/tmp/x")
    chunked = load_config({"late_chunking": True, "max_input_tokens": "512", "model": "local:m"}, None, {})
    assert RunConfig.from_manifest(chunked.embedding_config()).embedding_config() == chunked.embedding_config()


def test_a_damaged_manifest_config_is_a_state_error(monkeypatch):
    monkeypatch.setenv("JINA_MIGRATE_SHARD_SIZE", "not read for manifests")
    good = load_config({}, None, {}).embedding_config()
    for bad in ({**good, "dimensions": "x"}, {**good, "evil": 1}, {**good, "task": "nope"}, ["not", "a", "table"]):
        with pytest.raises(StateError, match="edited by hand|not a table"):
            RunConfig.from_manifest(bad)  # type: ignore[arg-type]
    assert RunConfig.from_manifest(good).shard_size == 1000  # the environment is not read


def test_backend_options_and_pickling():
    api = load_config({"tpm": "5000", "dimensions": "256", "base_url": "http://127.0.0.1:9"}, None, {})
    opts = api.backend_options()
    assert opts["tpm"] == 5000 and opts["dimensions"] == 256 and opts["tier"] == "conservative"
    assert "device" not in opts
    local = load_config({"model": "local:x", "device": "cuda:1", "dtype": "bf16"}, None, {})
    assert {"device": "cuda:1", "dtype": "bf16"}.items() <= local.backend_options().items()
    again = pickle.loads(pickle.dumps(api))  # Ray ships the config to its workers
    assert again == api and again.where("tpm") == "--tpm"


def test_plain_construction_reads_the_environment_like_pydantic_settings(monkeypatch):
    monkeypatch.setenv("JINA_MIGRATE_SHARD_SIZE", "77")
    assert RunConfig().shard_size == 77
    monkeypatch.setenv("JINA_MIGRATE_SHARD_SIZE", "7.7")
    with pytest.raises(ConfigError, match="JINA_MIGRATE_SHARD_SIZE: expected a whole number"):
        RunConfig()


def test_an_integer_a_float_cannot_hold_is_refused_not_rounded(tmp_path):
    """max_cost = 9007199254740993 (2**53 + 1) would silently become ...992.0 (found by the property test)."""
    path = toml(tmp_path, "max_cost = 9007199254740993\n")
    assert error_of(toml_path=path).startswith(f"{path}: max_cost: expected")
    assert error_of({"max_cost": 2**53 + 1}).startswith("--max-cost: expected")
    assert load_config({"max_cost": 2**53, "price_per_million": 0.02}, None, {}).max_cost == float(2**53)  # exact
