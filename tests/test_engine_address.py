"""Database addresses: one spelling, validated before anything connects; secrets never in a URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.engines import is_address, open_engine, parse_address
from migrate.errors import ConfigError
from migrate.secrets import redact


def test_every_engine_parses():
    pg = parse_address("postgresql://app@db.internal:5433/shop?table=docs&id=doc_id&text=body&vector=embedding"
                       "&payload=title,price&sslmode=require")
    assert (pg.engine, pg.host, pg.port, pg.database, pg.user, pg.collection) == \
        ("postgres", "db.internal", 5433, "shop", "app", "docs")
    assert (pg.id_field, pg.text_field, pg.vector_field, pg.payload) == ("doc_id", "body", "embedding",
                                                                         ("title", "price"))
    assert pg.option("sslmode") == "require"
    sock = parse_address("postgres://postgres:@/postgres?host=/tmp/pg%20sock&table=docs")  # empty password is none
    assert sock.host == "/tmp/pg sock" and sock.database == "postgres" and sock.secret is None
    q = parse_address("qdrant:///data/q?collection=docs")
    assert q.path == Path("/data/q") and q.embedded and q.collection == "docs"
    qs = parse_address("qdrants://qdrant.example.com:6334?collection=docs&alias=docs_live")
    assert (qs.host, qs.port, qs.https, qs.alias) == ("qdrant.example.com", 6334, True, "docs_live")
    assert parse_address("qdrant://localhost:6333?collection=docs&https=1").https
    m = parse_address("milvus:///data/milvus.db?collection=docs")
    assert m.path == Path("/data/milvus.db")
    assert parse_address("milvus://10.0.0.5:19530?collection=docs&db_name=prod").database == "prod"
    assert parse_address("lancedb:///data/lance?table=docs").collection == "docs"
    rel = parse_address("chroma://./data/chroma?collection=my-docs")
    assert rel.path == Path("data/chroma") and not rel.path.is_absolute()
    assert parse_address("lancedb:///x?collection=a").collection == "a"  # table / collection are synonyms


def test_str_round_trips_without_secrets(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "qk-very-secret-123")
    a = parse_address("qdrants://qdrant.example.com:6334?collection=docs")
    assert a.secret == "qk-very-secret-123"
    assert "qk-very-secret" not in str(a) and "qk-very-secret" not in repr(a)
    assert redact("server said qk-very-secret-123") == "server said [REDACTED]"  # registered for redaction
    for uri in ["postgresql://app@db:5433/shop?table=docs", "qdrant:///data/q?collection=docs",
                "chroma://./rel/dir?collection=abc", "postgresql://postgres@/postgres?host=/tmp/s&table=t",
                "postgresql://app@db/shop?table=docs&schema=s1&id=doc_id&text=body&vector=emb&payload=a,b"
                "&alias=live&sslmode=require", "milvus://m:19530?collection=docs&db_name=prod&https=1"]:
        a = parse_address(uri)
        assert parse_address(str(a)) == a


@pytest.mark.parametrize("uri", [
    "postgresql://app:hunter2-secret@db/shop?table=docs",
    "postgresql://db/shop?table=docs&password=hunter2-secret",
    "qdrant://app:hunter2-secret@q:6333?collection=docs",
    "qdrant://q:6333?collection=docs&api_key=hunter2-secret",
    "milvus://m:19530?collection=docs&token=hunter2-secret",
])
def test_a_secret_in_the_address_is_refused_without_echoing_it(uri):
    with pytest.raises(ConfigError) as err:
        parse_address(uri)
    text = str(err.value)
    assert "hunter2" not in text and "\n" not in text
    assert "never accepted" in text and ("export" in text)


def test_secrets_come_from_a_file_or_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "pw"
    f.write_text("pw-from-file-987\n")
    a = parse_address(f"postgresql://app@db/shop?table=docs&password_file={f}")
    assert a.secret == "pw-from-file-987" and "pw-from-file" not in str(a)
    monkeypatch.setenv("MILVUS_TOKEN", "mt-token-555")
    assert parse_address("milvus://m:19530?collection=docs").secret == "mt-token-555"
    monkeypatch.delenv("MILVUS_TOKEN")
    monkeypatch.setenv("MILVUS_PASSWORD", "mp-555")
    assert parse_address("milvus://root@m:19530?collection=docs").secret == "root:mp-555"
    with pytest.raises(ConfigError):
        parse_address(f"postgresql://db/shop?table=docs&password_file={tmp_path / 'missing'}")


@pytest.mark.parametrize("uri,why", [
    ("postgresql://db/shop?table=do\"cs", "quotes"),
    ("postgresql://db/shop?table=docs;drop", "semicolons"),
    ("postgresql://db/shop?table=public.docs", "schema"),
    ("postgresql://db/shop?table=" + "x" * 64, "63 bytes"),
    ("postgresql://db/sh%22op?table=docs", "quotes"),
    ("milvus:///m.db?collection=dökümanlar", "ASCII"),
    ("milvus:///m.db?collection=1docs", "letter"),
    ("chroma:///c?collection=ab", "3-512"),
    ("chroma:///c?collection=my docs", "3-512"),
    ("lancedb:///l?table=../etc", "LanceDB"),
    ("qdrant:///q?collection=a/b", "/"),
    ("qdrant:///q?collection=a%0Ab", "control"),
    ("qdrant:///q?collection=docs&colection=x", "unknown address option"),
    ("qdrant:///q?collection=a&collection=b", "twice"),
    ("qdrant:///q?table=a&collection=b", "differ"),
    ("redis://r?collection=docs", "unknown database scheme"),
    ("lancedb://host:9000/x?table=docs", "local paths"),
    ("qdrant://q:6333/some/path?collection=docs", "no path"),
    ("postgresql://db:99999/shop?table=docs", "malformed"),
])
def test_hostile_or_broken_addresses_give_one_line(uri, why):
    with pytest.raises(ConfigError) as err:
        parse_address(uri)
    text = str(err.value)
    assert why in text and "\n" not in text


def test_bad_addresses_fail_before_connecting(tmp_path):
    """open_engine validates first: nothing is created on disk for a refused address."""
    target = tmp_path / "never"
    with pytest.raises(ConfigError):
        open_engine(f"lancedb://{target}?table=bad'name")
    with pytest.raises(ConfigError):
        open_engine(f"qdrant://{target}?collection=docs&password=x")
    assert not target.exists()


def test_is_address():
    assert is_address("postgresql://db/x?table=t") and is_address("chroma:///p")
    assert not is_address("runs/v3") and not is_address("old.faiss") and not is_address("https://example.com/x")
