"""`jina-migrate serve-api` refuses a bad address before it writes anything (issue 18, item 13).

Run as a user runs it (the installed console script, in an empty working directory): an impossible
port, a host that does not resolve and a port another process holds are each one `error:` line and
exit 2, and the directory stays empty (no key file is left behind when no key was given).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("static_model")

EXE = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "jina-migrate"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _serve(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), "serve-api", "--fast", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=180)


def _one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    first = proc.stderr.splitlines()[0]
    assert first.startswith("error: "), proc.stderr
    return first


@pytest.mark.parametrize("args,needle", [
    (("--port", "99999"), "--port"),
    (("--port", "-1"), "--port"),
    (("--host", "no-such-host.invalid"), "--host"),
])
def test_bad_address_is_one_line_and_writes_no_key(tmp_path, args, needle):
    line = _one_error(_serve(tmp_path, *args))
    assert needle in line
    assert list(tmp_path.iterdir()) == []  # no key file in the working directory


def test_port_in_use_leaves_no_key_file(tmp_path):
    """A port another process listens on is refused before the models load, and no key file is left."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        line = _one_error(_serve(tmp_path, "--port", str(port)))
    finally:
        holder.close()
    assert f"127.0.0.1:{port}" in line and "cannot listen" in line
    assert list(tmp_path.iterdir()) == []
