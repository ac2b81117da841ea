"""The command line's options are the settings: same names, one declaration, help for each, no ``<bool>``.

Also the parser's own errors, whatever click they come from (typer >= 0.29 vendors it as
``typer._click``; older typer and other libraries raise ``click``'s), and the bare command.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from reliability_util import cli_inproc

from migrate.cli import _register_plugins, app, exit_code_for
from migrate.cli_options import OPTS, option_name, settings_command
from migrate.config import RunConfig, load_config, parse_flags

RUN_ONLY = {"use_case", "executor", "ray_address", "plan", "config"}  # options that are not settings


def click_command(name: str):
    _register_plugins()
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def test_run_has_one_option_per_setting_named_like_it():
    params = {p.name: p for p in click_command("run").params}
    assert set(params) == set(RunConfig.model_fields) | RUN_ONLY
    for name in RunConfig.model_fields:
        assert option_name(name) in params[name].opts, (name, params[name].opts)
        assert (params[name].help or "").strip(), f"--{name} has no help"
    for name in RUN_ONLY:
        assert (params[name].help or "").strip(), f"--{name} has no help"


def test_every_command_option_has_help():
    _register_plugins()
    group = typer.main.get_command(app)
    missing = [f"{cmd} {p.opts[0]}" for cmd, c in group.commands.items()  # type: ignore[attr-defined]
               for p in c.params if isinstance(p, typer.core.TyperOption) and not (p.help or "").strip()]
    # every command the README documents is registered (plugins too), so none escapes the check below
    assert set(group.commands) >= {"run", "status", "verify", "finalize", "search", "demo", "serve-api", "plan",
                                   "models", "compare", "cutover", "rollback"}, sorted(group.commands)
    assert not missing, missing


def test_help_shows_no_bool_placeholder_anywhere(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    _register_plugins()
    for args in ([], ["--help"], *([name, "--help"] for name in typer.main.get_command(app).commands)):  # type: ignore[attr-defined]
        rc, out, err = cli_inproc(*args)
        assert rc == 0, (args, err)
        assert "<bool>" not in out, f"jina-migrate {' '.join(args)}"
        assert "Usage:" in out


def test_run_help_lists_the_tier_default_and_the_choices(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    rc, out, _ = cli_inproc("run", "--help")
    assert rc == 0
    flat = " ".join(out.split())
    assert "conservative (default)" in flat and "flat (default), hnsw, ivfpq" in flat
    assert "--max-input-tokens" in out and "--no-late-chunking" in out


def test_bare_command_prints_help_and_succeeds():
    rc, out, err = cli_inproc()
    assert rc == 0 and "Usage: jina-migrate" in out and "run" in out and err == ""


def test_shared_declarations_work_in_another_command():
    """What ``plan`` will do: reuse the settings' declarations and parse them the same way."""
    mini = typer.Typer()
    seen: dict[str, Any] = {}

    @mini.command()
    def plan_like(docs: OPTS.docs = None, tier: OPTS.tier = None, truncate: OPTS.truncate = None,
                  dimensions: OPTS.dimensions = None) -> None:
        seen.update(parse_flags({"docs": docs, "tier": tier, "truncate": truncate, "dimensions": dimensions}))

    mini(["--docs", "d.jsonl", "--tier", "free", "--no-truncate", "--dimensions", "256"], standalone_mode=False)
    assert seen == {"docs": Path("d.jsonl"), "tier": "free", "truncate": False,
                    "dimensions": 256}
    from migrate.errors import ConfigError

    with pytest.raises(ConfigError, match="--dimensions: expected a whole number, got '2.5'"):
        mini(["--dimensions", "2.5"], standalone_mode=False)


def test_settings_command_passes_settings_as_one_dict():
    got: dict[str, Any] = {}
    mini = typer.Typer()

    @mini.command()
    @settings_command(["shard_size", "restart", "late_chunking"])
    def cmd(settings: dict[str, Any], *, extra: str = "x") -> None:
        got.update(settings, extra=extra)

    mini(["--shard-size", "5", "--no-late-chunking", "--extra", "y"], standalone_mode=False)
    assert got == {"shard_size": "5", "restart": None, "late_chunking": False, "extra": "y"}
    assert load_config({k: v for k, v in got.items() if k != "extra"}, None, {}).shard_size == 5


def _click_errors():
    mods = [importlib.import_module("typer._click.exceptions")] if importlib.util.find_spec("typer._click") else []
    if importlib.util.find_spec("click"):
        mods.append(importlib.import_module("click.exceptions"))
    return mods


@pytest.mark.parametrize("mod", _click_errors(), ids=lambda m: m.__name__)
def test_parser_errors_from_either_click_are_one_line(mod, capsys):
    for exc in (mod.NoSuchOption("--dimension"), mod.UsageError("No such command 'plna'."),
                mod.BadParameter("not a number"), mod.MissingParameter(param_hint="'--out'", param_type="option")):
        assert exit_code_for(exc) == 2
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("error: ") and len(err) == 2 and err[1].startswith("hint: run 'jina-migrate")
        assert "Traceback" not in "".join(err)


def test_a_command_called_bare_for_its_help_is_no_error(capsys):
    mini = typer.Typer(no_args_is_help=True)

    @mini.command()
    def one(x: int = 1) -> None:
        pass

    @mini.command()
    def two() -> None:
        pass

    with pytest.raises(Exception) as info:
        mini([], standalone_mode=False)
    assert exit_code_for(info.value) == 0
    captured = capsys.readouterr()
    assert "Usage:" in captured.out and "error:" not in captured.err


def test_interrupt_and_bugs(capsys):
    assert exit_code_for(KeyboardInterrupt(), ["run", "--docs", "d.jsonl"]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    for argv in (["compare", "--old-index", "x"], ["--json", "search", "q"], []):
        assert exit_code_for(KeyboardInterrupt(), argv) == 130  # nothing to resume: no shard advice
        err = capsys.readouterr().err
        assert err.strip() == "interrupted" and "shard" not in err
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        exit_code_for(ZeroDivisionError("bug"))
