"""``jina-migrate serve-api``: run the local Jina-compatible server in the foreground.

What: the same server the tests and the demo use (``migrate.rehearsal``), on a loopback
port, with real stand-in models, optional rate limits and seeded fault injection. It
accepts what the real API accepts per model (v3: ``dimensions`` 32..1024, default 1024,
served by truncating or zero-padding the stand-in's vector; v2: no task, no late chunking,
only its own width) and embeds like the stand-in does locally; ``/v1/models`` says how.
Every option (port range, host, limits, fault rates, the model map) is checked before
anything is written.
Why: users can rehearse a migration (or point their CI) at it for free:
``jina-migrate run --base-url http://127.0.0.1:8080 ...`` with a key from the key file.

Keys come from ``--api-key-file`` (one per line) or ``--api-key-env``; with neither, a
random key is written to a new 0600 file whose *path* is printed (never the key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("serve-api")(serve_api)


def serve_api(
    host: Annotated[str, typer.Option(help="Address to listen on (keep it loopback unless you mean it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).", min=0, max=65535)] = 8080,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File with the accepted API keys, one per line.")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the accepted key.")] = None,
    models: Annotated[Optional[Path], typer.Option("--models", help="JSON/TOML model map: {models: {NAME: {stand_in, prefixes}}}.")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Serve every model name with the fast static model (load tests).")] = False,
    long_context: Annotated[bool, typer.Option("--long-context", help="Embed texts past a stand-in's own input limit in overlapping windows (default: cut where the stand-in cuts, as it does locally).")] = False,
    rpm: Annotated[Optional[int], typer.Option(help="Requests per minute per key (default unlimited).")] = None,
    tpm: Annotated[Optional[int], typer.Option(help="Tokens per minute per key (default unlimited).")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight per key (default unlimited).")] = None,
    window: Annotated[float, typer.Option(help="Rate-limit burst window in seconds (60 = a full minute's budget at once).")] = 60.0,
    balance: Annotated[Optional[int], typer.Option(help="Tokens each key may spend; then 402 (see --balance-status).")] = None,
    balance_status: Annotated[int, typer.Option(help="Status for an exhausted balance: 402 or 403.")] = 402,
    faults: Annotated[float, typer.Option(help="Mixed fault rate, split evenly over all fault kinds.")] = 0.0,
    fault_429: Annotated[float, typer.Option("--fault-429", help="Fraction of requests answered 429.")] = 0.0,
    fault_500: Annotated[float, typer.Option("--fault-500", help="Fraction answered 500.")] = 0.0,
    fault_503: Annotated[float, typer.Option("--fault-503", help="Fraction answered 503.")] = 0.0,
    fault_drop: Annotated[float, typer.Option("--fault-drop", help="Fraction whose connection is dropped mid-response.")] = 0.0,
    fault_slow: Annotated[float, typer.Option("--fault-slow", help="Fraction answered after --slow-s seconds.")] = 0.0,
    fault_truncated: Annotated[float, typer.Option("--fault-truncated", help="Fraction with a truncated JSON body.")] = 0.0,
    fault_wrong_count: Annotated[float, typer.Option("--fault-wrong-count", help="Fraction with one embedding missing.")] = 0.0,
    slow_s: Annotated[float, typer.Option(help="Delay of a slow response, seconds.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Fault seed (same seed + same requests = same faults).")] = 0,
) -> None:
    """Serve the Jina Embeddings API locally with real stand-in models (not Jina's weights).

    Every option is checked (and the model map read) before anything is written: a generated
    key file is the last thing made before the server binds, and it is removed again if the
    server never started (port taken, address not local).
    """
    from migrate.rehearsal.limits import ServerLimits
    from migrate.rehearsal.run import build_config, new_api_key, read_key_file, serve_forever, write_key_file

    _check_numbers(rpm=rpm, tpm=tpm, concurrency=concurrency, window=window, balance=balance, slow_s=slow_s)
    if balance_status not in (402, 403):
        raise ConfigError(f"--balance-status must be 402 or 403, got {balance_status}")
    fc = _fault_config(faults, seed=seed, slow_s=slow_s, p429=fault_429, p500=fault_500, p503=fault_503,
                       drop=fault_drop, slow=fault_slow, truncated=fault_truncated, wrong_count=fault_wrong_count)
    _check_host(host, port)
    keys: set[str] = set()
    if api_key_file is not None:
        keys |= read_key_file(api_key_file)
    if api_key_env:
        v = os.environ.get(api_key_env, "").strip()
        if not v:
            raise ConfigError(f"--api-key-env {api_key_env}: the variable is empty")
        keys.add(v)
    generated = not keys
    if generated:
        keys.add(new_api_key())
    config = build_config(
        api_keys=keys,
        model_config=models,
        fast=fast,
        limits=ServerLimits(rpm=rpm, tpm=tpm, concurrency=concurrency, window_s=window),
        faults=fc,
        balance_tokens=balance,
        balance_status=balance_status,
        long_context=long_context,
    )
    names = ", ".join(f"{n} -> {m.stand_in}" for n, m in config.models.items())
    started = False

    def ready(url: str) -> None:
        nonlocal started
        started = True
        if key_path is not None:
            typer.echo(f"no key given: wrote a new API key to {key_path} (mode 600)", err=True)
        typer.echo(f"Jina-compatible stand-in server at {url}  (POST {url}/v1/embeddings)", err=True)
        typer.echo(f"models (stand-ins, not Jina's weights): {names}", err=True)

    key_path = write_key_file(keys, Path.cwd()) if generated else None
    try:
        serve_forever(config, host, port, on_ready=ready)
    except BaseException:
        if key_path is not None and not started:  # nothing ever used it: leave nothing behind
            key_path.unlink(missing_ok=True)
        raise


def _check_numbers(**values: float | None) -> None:
    """Limits, window, balance and delay are positive (or zero where that means something)."""
    for name, value in values.items():
        if value is None:
            continue
        zero_ok = name in ("balance", "slow_s")
        if value < 0 or (value == 0 and not zero_ok):
            need = "at least 0" if zero_ok else "more than 0"
            raise ConfigError(f"--{name.replace('_', '-')} must be {need}, got {value}")


def _fault_config(mixed: float, *, seed: int, slow_s: float, **rates: float):
    """The fault mix (``--faults`` splits one rate over every kind); impossible rates are one error line."""
    from migrate.rehearsal.faults import FaultConfig

    try:
        if mixed:
            return FaultConfig.mixed(mixed, seed=seed, slow_s=slow_s)
        return FaultConfig(**rates, slow_s=slow_s, seed=seed)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="fault rates are fractions in [0, 1] that add up to at most 1") from None


def _check_host(host: str, port: int) -> None:
    """The address can be listened on (a typo, a port another process holds): one error line before the
    models load and before any file is written. The server binds again itself; a port taken in between
    is still refused there (and the generated key file removed)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as the server binds (rehearsal.run)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: no such address here ({exc.strerror})",
                          hint="use 127.0.0.1 (this machine only) or an address of this machine") from None
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}",
                          hint="choose another --port (0 = any free port), or --host 127.0.0.1") from None
    finally:
        sock.close()
