"""Configuration precedence and the configuration fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.config import load_config
from migrate.errors import ConfigError


def test_flags_beat_toml_beat_environment(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text('[migrate]\ntask = "retrieval.passage"\nshard-size = 50\ndimensions = 512\n')
    env = {"JINA_MIGRATE_TASK": "separation", "JINA_MIGRATE_SHARD_SIZE": "7", "JINA_MIGRATE_TPM": "12345"}
    cfg = load_config({"dimensions": 256}, toml, environ=env)
    assert cfg.dimensions == 256  # flag
    assert cfg.task == "retrieval.passage" and cfg.shard_size == 50  # file over environment
    assert cfg.tpm == 12345  # environment when nothing else sets it
    assert load_config({}, None, environ={}).task == "text-matching"  # default mimics v2


def test_bad_configuration_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = [unclosed\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config({}, bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_config({}, unknown, environ={})
    with pytest.raises(ConfigError, match="needs --price-per-million"):
        load_config({"max_cost": 5.0}, None, environ={})
    with pytest.raises(ConfigError, match="I/N"):
        load_config({"shard": "x"}, None, environ={})


def test_embedding_fields_make_the_fingerprint():
    from migrate.pipeline import config_fingerprint

    a = load_config({"model": "local:x"}, None, environ={})
    b = load_config({"model": "local:x", "shard_size": 10, "tpm": 5}, None, environ={})
    c = load_config({"model": "local:x", "dimensions": 256}, None, environ={})
    assert config_fingerprint(a) == config_fingerprint(b) != config_fingerprint(c)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    from migrate.atomic import write_with

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_with(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
