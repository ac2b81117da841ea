"""Start the bundled Jina-compatible server: in a thread, in a subprocess, or in the foreground.

What:
* ``run_server(...)`` -> context manager yielding a ``ServerHandle`` (``base_url``,
  ``api_key``, ``usage()``), on a free loopback port. ``mode="thread"`` (default) is
  cheapest for tests; ``mode="process"`` gives the server its own interpreter (no GIL
  shared with the client: use it for benchmarks, and for tests that kill the client).
* ``serve_forever(config, host, port)``: what ``jina-migrate serve-api`` runs.
* ``config_to_dict`` / ``config_from_dict``: a JSON form of ``ServerConfig`` that holds
  the *path* of a key file, never a key, so a config can be passed to a subprocess or
  saved without leaking a secret.

Why: tests, the offline demo, and users' CI all need a server they can start with one
call and point a client at with only a base URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from migrate.errors import ConfigError
from migrate.rehearsal.faults import FaultConfig
from migrate.rehearsal.limits import ServerLimits
from migrate.rehearsal.models import default_model_map, load_model_map, model_from_dict
from migrate.rehearsal.server import JinaCompatServer, ServerConfig

READY_PREFIX = "JINA-MIGRATE-SERVER LISTENING "


def new_api_key() -> str:
    """A random key in Jina's visual format (``jina_...``)."""
    return "jina_" + secrets.token_hex(24)


def read_key_file(path: Path | str) -> frozenset[str]:
    """Keys from a file, one per line (blank lines and ``#`` comments ignored)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read API key file {p}: {why}", hint="give a file with one key per line") from None
    keys = frozenset(s.strip() for s in lines if s.strip() and not s.strip().startswith("#"))
    if not keys:
        raise ConfigError(f"API key file {p} holds no key", hint="put one key per line")
    return keys


def write_key_file(keys: set[str] | frozenset[str], directory: Path | None = None) -> Path:
    """Write keys to a new 0600 file and return its path."""
    fd, name = tempfile.mkstemp(prefix="jina-migrate-keys-", suffix=".txt", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(sorted(keys)) + "\n")
    os.chmod(name, 0o600)
    return Path(name)


def config_to_dict(config: ServerConfig, key_file: Path) -> dict[str, Any]:
    """JSON-able form of ``config``; keys stay in ``key_file``."""
    return {
        "api_key_file": str(key_file),
        "models": {n: m.as_dict() for n, m in config.models.items()},
        "limits": {
            "rpm": config.limits.rpm,
            "tpm": config.limits.tpm,
            "concurrency": config.limits.concurrency,
            "window_s": config.limits.window_s,
        },
        "faults": config.faults.as_dict(),
        "balance_tokens": config.balance_tokens,
        "balance_status": config.balance_status,
        "default_normalized": config.default_normalized,
        "long_context": config.long_context,
    }


def config_from_dict(d: dict[str, Any]) -> ServerConfig:
    models = {n: model_from_dict(n, m, "server config") for n, m in d["models"].items()}
    return ServerConfig(
        api_keys=read_key_file(d["api_key_file"]),
        models=models,
        limits=ServerLimits(**d.get("limits", {})),
        faults=FaultConfig(**d.get("faults", {})),
        balance_tokens=d.get("balance_tokens"),
        balance_status=int(d.get("balance_status", 402)),
        default_normalized=bool(d.get("default_normalized", False)),
        long_context=bool(d.get("long_context", False)),
    )


def build_config(
    *,
    api_keys: set[str] | frozenset[str],
    model_config: Path | str | None = None,
    fast: bool = False,
    limits: ServerLimits | None = None,
    faults: FaultConfig | None = None,
    balance_tokens: int | None = None,
    balance_status: int = 402,
    long_context: bool = False,
) -> ServerConfig:
    models = load_model_map(model_config) if model_config else default_model_map(fast=fast)
    return ServerConfig(
        api_keys=frozenset(api_keys),
        models=models,
        limits=limits or ServerLimits(),
        faults=faults or FaultConfig(),
        balance_tokens=balance_tokens,
        balance_status=balance_status,
        long_context=long_context,
    )


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="choose another --port") from exc
    return sock


def _uvicorn_server(app: Any, log_level: str = "warning") -> Any:
    """uvicorn without access logs (request lines are not needed and never hold keys anyway)."""
    import uvicorn

    cfg = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_keep_alive=30)
    return uvicorn.Server(cfg)


def serve_forever(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    preload: bool = True,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Run the server in the foreground until interrupted."""
    server = JinaCompatServer(config)
    if preload:
        for m in {m.stand_in for m in config.models.values()}:
            server.runtimes.get(m)
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    uv = _uvicorn_server(server.app, log_level)
    if on_ready is not None:
        threading.Thread(target=_announce_when_started, args=(uv, url, on_ready), daemon=True).start()
    uv.run(sockets=[sock])


def _announce_when_started(uv: Any, url: str, on_ready: Callable[[str], None]) -> None:
    while not uv.started:
        time.sleep(0.02)
    on_ready(url)


@dataclass
class ServerHandle:
    """A running server: where it is, a key that works, and its own accounting."""

    base_url: str
    api_key: str
    server: JinaCompatServer | None = None  # in-process only
    process: subprocess.Popen | None = None

    def usage(self) -> dict[str, Any]:
        """The server's ``/v1/usage`` for this handle's key (billed tokens, requests, faults)."""
        r = httpx.get(self.base_url + "/v1/usage", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10)
        r.raise_for_status()
        return r.json()


@contextlib.contextmanager
def run_server(
    *,
    api_key: str | None = None,
    fast: bool = False,
    model_config: Path | str | None = None,
    limits: ServerLimits | None = None,
    faults: FaultConfig | None = None,
    balance_tokens: int | None = None,
    balance_status: int = 402,
    long_context: bool = False,
    mode: str = "thread",
    preload: tuple[str, ...] | None = None,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 120.0,
) -> Iterator[ServerHandle]:
    """Start a server on a free loopback port; stop it on exit.

    ``preload`` names stand-ins to load before the first request (default: all the
    configuration uses, which for the default map means MiniLM and e5-small).
    """
    key = api_key or new_api_key()
    config = build_config(
        api_keys={key}, model_config=model_config, fast=fast, limits=limits, faults=faults,
        balance_tokens=balance_tokens, balance_status=balance_status, long_context=long_context,
    )
    to_load = preload if preload is not None else tuple(sorted({m.stand_in for m in config.models.values()}))
    if mode == "thread":
        yield from _run_thread(config, key, host, to_load, startup_timeout_s)
    elif mode == "process":
        yield from _run_process(config, key, host, to_load, startup_timeout_s)
    else:
        raise ConfigError(f"unknown server mode {mode!r}", hint="use 'thread' or 'process'")


def _run_thread(config: ServerConfig, key: str, host: str, preload: tuple[str, ...], timeout: float) -> Iterator[ServerHandle]:
    server = JinaCompatServer(config)
    for name in preload:
        server.runtimes.get(name)
    sock = _bind(host, 0)
    uv = _uvicorn_server(server.app, "critical")  # injected drops would log errors
    t = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="jina-compat-server", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not uv.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("local Jina-compatible server did not start")
        time.sleep(0.01)
    try:
        yield ServerHandle(f"http://{host}:{sock.getsockname()[1]}", key, server=server)
    finally:
        uv.should_exit = True
        t.join(timeout=10)
        sock.close()


def _run_process(config: ServerConfig, key: str, host: str, preload: tuple[str, ...], timeout: float) -> Iterator[ServerHandle]:
    with tempfile.TemporaryDirectory(prefix="jina-migrate-server-") as tmp:
        key_file = write_key_file({key}, Path(tmp))
        cfg_path = Path(tmp) / "server.json"
        d = config_to_dict(config, key_file)
        d["preload"] = list(preload)
        d["log_level"] = "critical"
        cfg_path.write_text(json.dumps(d), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "migrate.rehearsal.main", str(cfg_path), "--host", host, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        try:
            url = _wait_ready(proc, timeout)
            yield ServerHandle(url, key, process=proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    result: list[str] = []

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith(READY_PREFIX):
                result.append(line[len(READY_PREFIX):].strip())
                break

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        proc.kill()
        raise RuntimeError(f"local Jina-compatible server process did not start (exit code {proc.poll()})")
    return result[0]
