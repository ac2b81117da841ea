"""``python -m migrate.rehearsal.main CONFIG.json``: the server in its own process.

Used by ``run_server(mode="process")``. The config is ``run.config_to_dict``'s
JSON (keys stay in the key file it names). Prints one ready line with the base URL.
"""

from __future__ import annotations

import argparse
import json
import os

from migrate.rehearsal.run import READY_PREFIX, config_from_dict, serve_forever


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with open(args.config, encoding="utf-8") as fh:
        d = json.load(fh)
    config = config_from_dict(d)
    serve_forever(config, args.host, args.port, preload=bool(d.get("preload", True)),
                  on_ready=lambda url: print(READY_PREFIX + url, flush=True), log_level=d.get("log_level", "warning"))


if __name__ == "__main__":
    main()
