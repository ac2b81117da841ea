"""The backend registry: capabilities, typed options, no prefix checks elsewhere, no import cycle.

Also the pieces that let a Ray worker hand the client its key and a shared limiter
through public parameters (``api_key=``, ``limiter=``) instead of ``os.environ`` and a
private slot.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.embed.backend import Capabilities
from migrate.embed.base import EmbedderInfo
from migrate.models import V3_TASKS
from migrate.embed.jina_api import APIOptions, JinaAPIEmbedder
from migrate.embed.registry import backend_for, backends, get_embedder
from migrate.errors import ConfigError
from migrate.secrets import Secret, read_api_key, redact

REPO = Path(__file__).resolve().parents[1]
V3 = "jina-api:jina-embeddings-v3"
V2 = "jina-api:jina-embeddings-v2-base-en"


def test_backend_for_declares_remote_billed_and_capabilities():
    api = backend_for(V3)
    assert (api.name, api.model, api.remote, api.billed) == ("jina-api", "jina-embeddings-v3", True, True)
    assert api.capabilities.dimensions == (32, 1024) and api.capabilities.late_chunking
    assert set(api.capabilities.tasks) == set(V3_TASKS) and api.options_type is APIOptions
    v2 = backend_for(V2).capabilities
    assert v2.dimensions == (768, 768) and not v2.late_chunking and v2.ignores("text-matching")
    assert not v2.ignores("none")
    assert backend_for("jina-api:jina-embeddings-v2-small-en").capabilities.dimensions == (512, 512)
    unknown = backend_for("jina-api:my-own-model").capabilities  # a compatible server may serve any name
    assert not unknown.catalogued and unknown.dimensions is None
    for spec in ("local:/models/x", "jina-local:/models/y"):
        b = backend_for(spec)
        assert not b.remote and not b.billed
    assert {"jina-api", "local", "jina-local"} <= set(backends())


@pytest.mark.parametrize("spec, options, needle", [
    (V3, {"dimensions": 1025}, "--dimensions 1025 is not possible for jina-embeddings-v3: it accepts 32..1024"),
    (V3, {"dimensions": 16}, "accepts 32..1024"),
    (V2, {"dimensions": 32}, "accepts only its own width, 768"),
    (V3, {"dimensions": "1024"}, "option 'dimensions': input should be a valid integer"),
    (V3, {"dimensions": 31.9}, "option 'dimensions': input should be a valid integer"),
    (V3, {"normalized": "maybe"}, "option 'normalized': input should be a valid boolean"),
    (V3, {"truncate": 1}, "option 'truncate': input should be a valid boolean"),
    (V3, {"rpm": True}, "option 'rpm': input should be a valid integer"),
    (V3, {"base_url": 42}, "option 'base_url': input should be a valid string"),
    (V3, {"device": "cpu"}, "jina-api does not take the option 'device'"),
    (V3, {"normalize": True, "normalized": False}, "disagree"),
    ("local:standin:static", {"base_url": "http://x"}, "local does not take the option 'base_url'"),
    ("local:standin:static", {"token_budget": "many"}, "option 'token_budget'"),
    ("nope:x", {}, "unknown embedding backend 'nope'"),
    ("no-prefix", {}, "has no backend prefix"),
])
def test_get_embedder_refuses_bad_options_naming_them(spec, options, needle):
    with pytest.raises(ConfigError) as ei:
        get_embedder(spec, **options)
    assert needle in str(ei.value)


def test_options_accept_an_options_object_and_dict():
    opts = APIOptions(dimensions=256, tier="tier1")
    e = get_embedder(V3, opts, base_url="http://127.0.0.1:9")
    assert e.options.dimensions == 256 and e.options.tier == "tier1" and e.base_url == "http://127.0.0.1:9"
    e2 = get_embedder(V3, {"dimensions": 64, "normalize": False})
    assert e2.options.dimensions == 64 and e2.options.normalized is False


def test_registry_imports_no_backend_and_backends_do_not_import_it():
    """No cycle registry <-> backends: importing the registry loads no backend module."""
    code = ("import sys, migrate.embed.registry as r; "
            "assert not any(m in sys.modules for m in ('migrate.embed.jina_api', 'migrate.embed.local', "
            "'migrate.embed.jina_v3', 'torch')), sorted(m for m in sys.modules if m.startswith('migrate'))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    for module in ("jina_api", "local", "jina_v3", "local_common", "api_options", "api_transport", "api_plan"):
        text = (REPO / "migrate" / "embed" / f"{module}.py").read_text()
        assert "migrate.embed.registry" not in text, module


def test_no_spec_prefix_checks_outside_the_registry():
    """Callers ask ``backend_for`` instead of testing ``"jina-api:"`` / ``"local:"`` prefixes."""
    pattern = re.compile(r"""startswith\(\(?\s*["'](jina-api|local|jina-local):""")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "migrate").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_embed_files_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (REPO / "migrate" / "embed").glob("*.py")}
    assert max(sizes.values()) <= 360, sizes


def test_secret_never_shows_and_survives_pickling():
    s = Secret("jina_abcdefghijklmnop_secret")
    assert "abcdefgh" not in repr(s) + str(s) + f"{s}" + repr([s])
    assert pickle.loads(pickle.dumps(s)).reveal() == "jina_abcdefghijklmnop_secret"
    assert "jina_abcdefghijklmnop_secret" not in redact("key jina_abcdefghijklmnop_secret here")
    e = JinaAPIEmbedder("jina-embeddings-v3", api_key="jina_abcdefghijklmnop_secret")
    assert "abcdefgh" not in repr(e) + repr(e.options) + str(e.info().as_dict())
    with pytest.raises(ConfigError) as ei:
        get_embedder(V3, api_key=12345)
    assert "12345" not in str(ei.value)


@pytest.mark.parametrize("content, needle", [(None, "API key file not found"), ("", "holds no key"),
                                             ("# comment only\n\n", "holds no key")])
def test_api_key_file_errors_name_the_file(tmp_path, content, needle):
    f = tmp_path / "my-key.txt"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ConfigError) as ei:
        read_api_key("JINA_API_KEY", f)
    msg = str(ei.value)
    assert str(f) in msg and needle in msg and "JINA_API_KEY" not in msg
    f.parent.joinpath("ok.txt").write_text("# my key\njina_from_the_file_0001\n")
    assert read_api_key("JINA_API_KEY", f.parent / "ok.txt") == "jina_from_the_file_0001"


def test_task_note_for_models_without_tasks():
    v2 = JinaAPIEmbedder("jina-embeddings-v2-base-en")
    info = v2.info()
    assert "text-matching" in info.ignored_tasks and info.as_dict()["ignored_tasks"]
    note = info.task_note("text-matching")
    assert note and "ignored" in note and "jina-embeddings-v2-base-en" in note
    assert info.task_note("none") is None
    v3 = JinaAPIEmbedder("jina-embeddings-v3").info()
    assert v3.ignored_tasks == () and v3.task_note("text-matching") is None
    assert EmbedderInfo("x", "m", 3).task_note("retrieval.query") is None
    with pytest.raises(ConfigError, match="late chunking is not available for jina-embeddings-v2-base-en"):
        v2.embed(["a"], task="none", late_chunking=True)


def test_capabilities_check_dimensions_message():
    with pytest.raises(ConfigError, match="accepts 8..16"):
        Capabilities(dimensions=(8, 16)).check_dimensions(17, "m")
    Capabilities(dimensions=None).check_dimensions(10_000, "m")  # unknown range: the model decides
