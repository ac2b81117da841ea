"""Property: random values of every type, for every setting, through flags, TOML and the environment.

Whatever the value, ``load_config`` either returns a configuration holding exactly that value
(no silent coercion: 31.9 never becomes 31, "banana" never becomes false, true never becomes 1)
or raises ONE ``ConfigError`` whose message starts with the key as the user wrote it in that
layer (``--dimensions``, ``settings.toml: dimensions``, ``JINA_MIGRATE_DIMENSIONS``). Nothing
else may escape (no traceback). In-process for speed, plus a few examples through the console
script.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.config import ENV_EXCLUDED, RunConfig, choices_of, kind_of, load_config
from migrate.errors import ConfigError

pytest_plugins = ["reliability_plugin"]

FIELDS = list(RunConfig.model_fields)
#: Values another setting needs so that this one can be valid at all.
COMPANIONS: dict[str, dict[str, Any]] = {"chunker": {"late_chunking": True}, "max_cost": {"price_per_million": 1.0}}
INT_TEXT = re.compile(r"[ \t\r\n]*[+-]?[0-9]+[ \t\r\n]*")
FLOAT_TEXT = re.compile(r"[ \t\r\n]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\r\n]*")
ENV_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}

chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
texts = st.one_of(
    st.text(chars, max_size=12),
    st.from_regex(r"\s?[+-]?[0-9]{1,5}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,2})?\s?", fullmatch=True),
    st.sampled_from(["true", "false", "yes", "No", "on", "OFF", "1", "0", "maybe", "nan", "inf", "-inf", "1_000",
                     "0x10", "31.0", "", " ", "0/4", "3/2", "http://127.0.0.1:9", "ftp://x", "jina-api:jina-embeddings-v3",
                     "jina-api:jina-embeddings-v4", "local:x", "tokens:64", "fixed:8", "sentences:x", "cuda:1", "JINA_KEY",
                     "/tmp", "."]),
    st.sampled_from(sorted({c for f in FIELDS for c in choices_of(f)})),
)
scalars = st.one_of(st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), texts)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def label(name: str, layer: str, toml_path: Path | None = None) -> str:
    return {"flag": "--" + name.replace("_", "-"), "toml": f"{toml_path}: {name}",
            "env": "JINA_MIGRATE_" + name.upper()}[layer]


def faithful(name: str, raw: Any, got: Any, layer: str) -> bool:
    """``got`` is exactly ``raw`` in the setting's type (text parsed only where the layer is text)."""
    kind, text = kind_of(name), isinstance(raw, str) and layer in ("flag", "env")
    if kind == "int":
        return (type(raw) is int and got == raw) or bool(text and INT_TEXT.fullmatch(raw) and got == int(raw))
    if kind == "float":
        return (type(raw) in (int, float) and math.isfinite(raw) and got == raw) or \
            bool(text and FLOAT_TEXT.fullmatch(raw) and got == float(raw))
    if kind == "bool":
        if type(raw) is bool:
            return got is raw
        word = raw.strip(" \t\r\n").lower() if isinstance(raw, str) else None
        allowed = ENV_WORDS if layer == "env" else {"true": True, "false": False}
        return bool(text and word in allowed and got is allowed[word])
    if kind == "path":
        return isinstance(raw, str) and got == Path(raw)
    if kind == "paths":
        items = raw if isinstance(raw, list) else (raw.split(",") if layer == "env" else [raw])
        return all(isinstance(x, str) for x in items) and got == [Path(x) for x in items]
    if name == "chunker":
        from migrate.embed.chunking import parse_chunker

        return isinstance(raw, str) and got == parse_chunker(raw).describe()
    return isinstance(raw, str) and got == raw and (not choices_of(name) or raw in choices_of(name))


def toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def outcome(name: str, raw: Any, layer: str, tmp: Path) -> str:
    flags: dict[str, Any] = dict(COMPANIONS.get(name, {}))
    toml_path, environ = None, {}
    if layer == "flag":
        flags[name] = raw
    elif layer == "toml":
        toml_path = tmp / "settings.toml"
        toml_path.write_text(f"[migrate]\n{name} = {toml_literal(raw)}\n", encoding="utf-8")
    else:
        environ[label(name, "env")] = raw
    try:
        cfg = load_config(flags, toml_path, environ)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith(label(name, layer, toml_path)), f"{name}={raw!r} via {layer}: {msg}"
        assert "\n" not in msg
        return "refused"
    if layer == "env" and name in ENV_EXCLUDED:
        assert getattr(cfg, name) == RunConfig.model_fields[name].get_default(call_default_factory=True)
        return "not read"
    got = getattr(cfg, name)
    assert faithful(name, raw, got, layer), f"{name}={raw!r} via {layer} became {got!r}"
    return "accepted as given"


SLOW_OK = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW_OK
@given(name=st.sampled_from(FIELDS), raw=values)
def test_flags_any_value(name, raw, tmp_path, reliability):
    reliability.tick("Hostile input", "random value of any type for any setting, as a flag (in process)",
                     outcome(name, raw, "flag", tmp_path))


@SLOW_OK
@given(name=st.sampled_from(FIELDS), raw=values)
def test_toml_any_value(name, raw, tmp_path, reliability):
    reliability.tick("Hostile input", "random value of any type for any setting, in the TOML file",
                     outcome(name, raw, "toml", tmp_path))


@SLOW_OK
@given(name=st.sampled_from(FIELDS), raw=texts)
def test_environment_any_text(name, raw, tmp_path, reliability):
    reliability.tick("Hostile input", "random text for any setting, as JINA_MIGRATE_<SETTING>",
                     outcome(name, raw, "env", tmp_path))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FIELDS), raw=st.text(chars, max_size=10), via_env=st.booleans())
def test_console_script_random_values(name, raw, via_env, tmp_path, reliability):
    """Through the installed script: one error line, exit 2, never a traceback (the documents do not exist)."""
    from test_user_mistakes import REPO, console_script

    args = ["run", "--docs", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_")}
    env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if via_env:
        env[label(name, "env")] = raw
    else:
        args.append(f"--{name.replace('_', '-')}={raw}")
    proc = subprocess.run(console_script() + args, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and lines and lines[0].startswith("error:"), proc.stderr
    assert sum(ln.startswith("error:") for ln in lines) == 1
    assert not (tmp_path / "out" / "manifest.json").exists()
    reliability.tick("Hostile input", "random text for a random setting through the console script (flag or env)",
                     "one error line, exit 2")
