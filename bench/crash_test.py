"""Seeded SIGKILL crash test: kill a migration again and again, resume, and prove nothing was lost.

What it does, for one backend (``local``: the static stand-in through ``local:``; ``api``: the
``jina-api`` client against the local Jina-compatible server, with the server in this process so it
survives the kills and keeps the bill):

1. An uninterrupted reference run into ``WORK/ref``.
2. Attempts into ``WORK/crash``, each a fresh ``python -m migrate run`` (the same command a user
   reruns), killed with SIGKILL:
   * at a *targeted point*: the child installs a hook (``--child``) that SIGKILLs its own process
     the Nth time it reaches a phase: a shard file half-written, a shard published without its
     completion record, a completion record, the manifest (before/after rename), the index build,
     ``index.faiss``, ``embeddings.parquet``, ``id_map.parquet``, and the final manifest update of
     finalize. Phases of shard work are used while shards are pending, finalize phases after.
   * or at a *random moment*: the parent kills it a seeded random time after it reported its start.
3. After every attempt: every completion record that existed before the attempt is byte-identical
   (a completed shard is never redone: its record carries the run's timing, so a redo would change
   it); every record that exists matches its shard file (nothing half-written is marked complete);
   with the API backend, the tokens the server billed during an attempt that was *not* killed
   equal exactly the probe plus the tokens of the shards it completed.
4. A final clean resume; then the output must equal the reference: same ids in the same order, each
   once, bit-identical vectors, identical FAISS ids, same token total, ``verify`` clean, no temp files.

Usage::

    python bench/crash_test.py --backend local --kills 20 --seed 7 [--json] [--work DIR]
    python bench/crash_test.py --backend api --kills 20 --seed 7

Exit code 0 when every check held; the JSON report lists each attempt (phase, killed or not,
shards done, tokens billed) and the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KILL_ENV = "JINA_MIGRATE_CRASH_AT"

#: phase -> (what it means, True if it needs pending shards)
PHASES: dict[str, tuple[str, bool]] = {
    "shard-partial": ("shard file half-written (torn temp file)", True),
    "shard-before": ("shard file written, not yet renamed into place", True),
    "shard-after": ("shard file published, completion record not yet written", True),
    "record-before": ("completion record written, not yet renamed", True),
    "record-after": ("completion record published", True),
    "manifest-before": ("manifest update written, not yet renamed", False),
    "manifest-after": ("manifest update renamed into place", False),
    "build": ("index build in progress (vectors assembled)", False),
    "index-before": ("index.faiss written, not yet renamed", False),
    "index-after": ("index.faiss published, manifest not yet updated", False),
    "embeddings-before": ("finalize: embeddings.parquet written, not renamed", False),
    "embeddings-after": ("finalize: embeddings.parquet published", False),
    "idmap-before": ("finalize: id_map.parquet written, not renamed", False),
}
FINALIZE_PHASES = ("build", "index-before", "index-after", "embeddings-before", "embeddings-after",
                   "idmap-before", "manifest-before", "manifest-after")
SHARD_PHASES = ("shard-partial", "shard-before", "shard-after", "record-before", "record-after",
                "manifest-before", "manifest-after")


# --------------------------------------------------------------------------- child side

def _install_kill_hook(spec: str) -> None:
    """``PHASE:N``: SIGKILL this process the Nth time it reaches PHASE (see ``PHASES``)."""
    phase, _, nth = spec.partition(":")
    target = int(nth or 1)
    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == target

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    name_of = {"shard": lambda n: n.startswith("shard-") and n.endswith(".parquet"),
               "record": lambda n: n.endswith(".done.json"), "manifest": lambda n: n == "manifest.json",
               "index": lambda n: n == "index.faiss", "embeddings": lambda n: n == "embeddings.parquet",
               "idmap": lambda n: n == "id_map.parquet"}
    kind, _, when = phase.partition("-")
    if phase == "build":
        import migrate.sinks.faiss_dir as index_mod

        real_build = index_mod._new_index

        def build(*a: Any, **kw: Any) -> Any:  # the FAISS sink starts building its index
            if hit():
                die()
            return real_build(*a, **kw)

        index_mod._new_index = build
        return
    if phase == "shard-partial":
        import pyarrow.parquet as pq

        real_write = pq.write_table

        def write_table(table: Any, where: Any, *a: Any, **kw: Any) -> Any:
            result = real_write(table, where, *a, **kw)
            p = Path(str(where))
            if p.name.startswith(".tmp-shard-") and hit():
                data = p.read_bytes()
                p.write_bytes(data[: len(data) // 2])
                die()
            return result

        pq.write_table = write_table
        return
    match = name_of[kind]
    real_replace = os.replace

    def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> Any:
        fire = match(Path(str(dst)).name) and hit()
        if fire and when == "before":
            die()
        result = real_replace(src, dst, *a, **kw)
        if fire:
            die()
        return result

    os.replace = replace


def child_main(argv: list[str]) -> None:
    spec = os.environ.get(KILL_ENV)
    if spec:
        _install_kill_hook(spec)
    from migrate.cli import main

    main(argv)


# --------------------------------------------------------------------------- parent side

@dataclass
class Attempt:
    n: int
    plan: str  # "PHASE:N" or "random:SECONDS" or "clean"
    killed: bool = False
    rc: int | None = None
    seconds: float = 0.0
    done_before: int = 0
    done_after: int = 0
    billed: int | None = None
    new_record_tokens: int = 0
    problems: list[str] = field(default_factory=list)


def _records(out: Path) -> dict[str, bytes]:
    d = out / "shards"
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.done.json"))} if d.is_dir() else {}


def _check_records_match_files(out: Path) -> list[str]:
    """A completion record must only exist for a complete, matching shard file."""
    from migrate.atomic import sha256_file

    problems = []
    for name, raw in _records(out).items():
        rec = json.loads(raw)
        data = out / "shards" / name.replace(".done.json", ".parquet")
        if not data.exists():
            problems.append(f"{name}: record without its shard file")
        elif sha256_file(data) != rec.get("sha256"):
            problems.append(f"{name}: record does not match its shard file")
    return problems


class Migration:
    """How to start a child run for one backend."""

    def __init__(self, backend: str, docs: Path, shard_size: int, stack: ExitStack) -> None:
        self.backend = backend
        self.docs = docs
        self.shard_size = shard_size
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.env.pop(KILL_ENV, None)
        self.server = None
        if backend == "api":
            from migrate.rehearsal.run import run_server

            self.server = stack.enter_context(run_server(fast=True))
            self.env["JINA_API_KEY"] = self.server.api_key

    def argv(self, out: Path) -> list[str]:
        args = ["run", "--docs", str(self.docs), "--shard-size", str(self.shard_size), "--out", str(out), "--json"]
        if self.backend == "api":
            return args + ["--model", "jina-api:jina-embeddings-v3", "--base-url", self.server.base_url,
                           "--tier", "tier2"]
        return args + ["--model", "local:standin:static", "--device", "cpu"]

    def billed(self) -> int | None:
        return int(self.server.usage()["total_tokens"]) if self.server is not None else None

    def start(self, out: Path, kill_at: str | None, finalize: bool = False) -> subprocess.Popen:
        env = dict(self.env)
        if kill_at:
            env[KILL_ENV] = kill_at
        argv = ["finalize", "--out", str(out), "--json"] if finalize else self.argv(out)
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", *argv],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(mig: Migration, out: Path, kill_at: str | None = None, kill_after: float | None = None,
         timeout: float = 900, finalize: bool = False) -> tuple[int, list[dict], str, float, float | None]:
    """Run one child (``run``, or ``finalize`` of a finished output); returns (rc, JSON events, stderr,
    seconds, seconds from 'start' event to exit)."""
    t0 = time.monotonic()
    proc = mig.start(out, kill_at, finalize)
    events: list[dict] = []
    started = threading.Event()
    t_start: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                events.append(ev)
                if ev.get("event") == "start" and not started.is_set():
                    t_start.append(time.monotonic())
                    started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if finalize:  # `finalize` prints no start event: its work starts with the process
        t_start.append(time.monotonic())
        started.set()
    if kill_after is not None:
        # Random moment, counted from the run's own start event (imports and model loading excluded).
        if started.wait(timeout) and proc.poll() is None:
            time.sleep(kill_after)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
    stderr = proc.stderr.read() if proc.stderr else ""
    end = time.monotonic()
    return proc.returncode, events, stderr, end - t0, (end - t_start[0]) if t_start else None


def _load(out: Path):
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(out / "embeddings.parquet")
    return (t.column("id").to_pylist(), np.asarray(t.column("vector").to_pylist(), dtype=np.float32),
            t.column("faiss_id").to_pylist())


def _probe_tokens(mig: Migration, work: Path) -> int:
    """Tokens one run's probe request costs (a run of one tiny document minus its shard tokens)."""
    if mig.server is None:
        return 0
    docs = work / "probe.jsonl"
    docs.write_text(json.dumps({"id": "p", "text": "probe"}) + "\n")
    before = mig.billed()
    rc, events, stderr, _, _ = _run(mig_for(mig, docs), work / "probe-out")
    if rc != 0:
        raise RuntimeError(f"probe run failed: {stderr[-500:]}")
    return int(mig.billed() - before - events[-1]["tokens_total"])


def mig_for(mig: Migration, docs: Path) -> Migration:
    other = Migration.__new__(Migration)
    other.__dict__.update(mig.__dict__)
    other.docs = docs
    return other


def schedule(rng: random.Random, kills: int, random_share: float = 0.3) -> list[str]:
    """Targeted shard phases, then targeted finalize phases, with seeded random-moment kills mixed in."""
    shard = [f"{p}:{1 if p.startswith('manifest') else rng.choice((1, 2))}" for p in SHARD_PHASES]
    shard = ["manifest-before:1", "manifest-after:1"] + shard  # the first two hit prepare's first manifest
    fin = [f"{p}:1" for p in FINALIZE_PHASES]
    n_random = max(1, int(kills * random_share))
    plan: list[str] = []
    for item in shard + fin:
        plan.append(item)
        if rng.random() < random_share and n_random > 0:
            plan.append("random")
            n_random -= 1
    return plan + ["random"] * n_random


def crash_test(backend: str, *, kills: int = 20, seed: int = 0, work: Path | None = None, n_docs: int = 96,
               shard_size: int = 4, max_attempts: int | None = None, phases: list[str] | None = None,
               log=print) -> dict[str, Any]:
    """Run the whole crash test for one backend; ``phases`` replaces the seeded schedule (a fast subset)."""
    from migrate.pipeline import verify
    from migrate.workspace import Workspace

    import numpy as np

    rng = random.Random(seed)
    own_tmp = work is None
    work = Path(tempfile.mkdtemp(prefix=f"crash-{backend}-")) if work is None else Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lines = (REPO / "fixtures" / "sample" / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:n_docs]
    docs = work / "docs.jsonl"
    docs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t_all = time.monotonic()
    report: dict[str, Any] = {"backend": backend, "seed": seed, "docs": len(lines), "shard_size": shard_size}
    with ExitStack() as stack:
        mig = Migration(backend, docs, shard_size, stack)
        probe = _probe_tokens(mig, work)
        ref, out = work / "ref", work / "crash"
        for d in (ref, out):
            shutil.rmtree(d, ignore_errors=True)
        billed0 = mig.billed()
        rc, events, stderr, secs, work_secs = _run(mig, ref)
        if rc != 0:
            raise RuntimeError(f"reference run failed ({rc}): {stderr[-800:]}")
        ref_summary = events[-1]
        ref_billed = (mig.billed() - billed0) if mig.server else None
        report["reference"] = {"seconds": round(secs, 2), "work_seconds": round(work_secs or 0, 2),
                               "tokens_total": ref_summary["tokens_total"], "billed": ref_billed,
                               "shards": ref_summary["shards_total"]}
        log(f"[{backend}] reference: {ref_summary['shards_total']} shards, {ref_summary['tokens_total']} tokens, "
            f"{secs:.1f}s")
        plan = list(phases) if phases is not None else schedule(rng, kills)
        attempts: list[Attempt] = []
        n_killed = 0
        phases_hit: dict[str, int] = {}
        limit = max_attempts or (len(plan) + kills * 2)
        i = 0
        while (n_killed < kills or i < len(plan)) and len(attempts) < limit:
            item = plan[i] if i < len(plan) else "random"
            i += 1
            try:
                ws = Workspace(out)
                m = ws.manifest()
                pending = [s for s in m.shard_plan().shards if not ws.is_complete(s, m.config_fingerprint)]
            except Exception:  # noqa: BLE001 - no manifest yet (or killed before the plan table): all pending
                pending = [None]
            if item != "random" and PHASES[item.split(":")[0]][1] and not pending:
                continue  # shard-phase kill, but no shard work left
            if item != "random" and item.split(":")[0] in FINALIZE_PHASES and not item.startswith("manifest") \
                    and pending and pending != [None]:
                # A finalize phase while shards are pending: first a kill right after the last record lands.
                item = f"record-after:{len(pending)}"
                i -= 1
            before = _records(out)
            billed_before = mig.billed()
            a = Attempt(n=len(attempts) + 1, plan=item, done_before=len(before))
            if item == "random":
                kill_after = rng.uniform(0.0, max(0.2, work_secs or 1.0))
                a.plan = f"random:{kill_after:.2f}s"
                rc, ev, err, secs, _ = _run(mig, out, kill_after=kill_after, finalize=not pending)
            else:
                # A finished, unchanged output is not rebuilt by `run`: its finalize phases are reached with `finalize`.
                rebuild = item.split(":")[0] in FINALIZE_PHASES and not pending
                rc, ev, err, secs, _ = _run(mig, out, kill_at=item, finalize=rebuild)
            a.rc, a.seconds = rc, round(secs, 2)
            a.killed = rc == -signal.SIGKILL
            after = _records(out)
            a.done_after = len(after)
            changed = [k for k, v in before.items() if after.get(k) != v]
            if changed:
                a.problems.append(f"completed shards were redone or changed: {changed[:3]}")
            a.problems += _check_records_match_files(out)
            new = [json.loads(v) for k, v in after.items() if k not in before]
            a.new_record_tokens = sum(int(r.get("tokens", 0)) for r in new)
            if mig.server is not None:
                a.billed = mig.billed() - billed_before
                if not a.killed:
                    want = a.new_record_tokens + (probe if a.done_before < ref_summary["shards_total"] else 0)
                    if a.billed != want:
                        a.problems.append(f"billed {a.billed} tokens, expected {want} (probe + new shards)")
            if not a.killed and rc != 0:
                a.problems.append(f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
            if a.killed:
                n_killed += 1
                key = a.plan.split(":")[0]
                phases_hit[key] = phases_hit.get(key, 0) + 1
            attempts.append(a)
            log(f"[{backend}] attempt {a.n:2d} {a.plan:22s} killed={a.killed!s:5s} rc={rc} "
                f"shards {a.done_before}->{a.done_after} billed={a.billed} {'; '.join(a.problems)}")
        # Final clean resume.
        billed_before = mig.billed()
        rc, ev, err, secs, _ = _run(mig, out)
        final_summary = ev[-1] if ev else {}
        checks: dict[str, Any] = {"final_exit": rc, "final_state": final_summary.get("state")}
        ids, vecs, fids = _load(out)
        rids, rvecs, rfids = _load(ref)
        checks["ids_identical"] = ids == rids
        checks["ids_unique"] = len(set(ids)) == len(ids) == len(rids)
        checks["vectors_identical"] = bool(vecs.shape == rvecs.shape and np.array_equal(vecs, rvecs))
        checks["max_abs_diff"] = float(np.abs(vecs - rvecs).max()) if vecs.shape == rvecs.shape else None
        checks["faiss_ids_identical"] = fids == rfids
        checks["tokens_total_equal"] = final_summary.get("tokens_total") == ref_summary["tokens_total"]
        v = verify(out)
        checks["verify_ok"] = v["ok"]
        checks["verify_problems"] = v["problems"]
        checks["temp_files_left"] = [str(p.relative_to(out)) for p in out.rglob(".tmp-*")]
        if mig.server is not None:
            total_billed = mig.billed() - billed0 - (ref_billed or 0)
            checks["billed_all_attempts"] = total_billed
            wasted = total_billed - ref_summary["tokens_total"]
            checks["billed_beyond_one_pass"] = wasted
            killed_shard_bound = sum(1 for a in attempts if a.killed) * max(
                int(json.loads(b).get("tokens", 0)) for b in _records(ref).values()) if _records(ref) else 0
            checks["billed_bound"] = killed_shard_bound + probe * (len(attempts) + 1)
            checks["billing_within_bound"] = 0 <= wasted <= checks["billed_bound"]
    problems = [p for a in attempts for p in a.problems]
    ok = (n_killed >= kills and not problems and rc == 0 and checks["final_state"] == "complete"
          and checks["ids_identical"] and checks["ids_unique"] and checks["vectors_identical"]
          and checks["faiss_ids_identical"] and checks["tokens_total_equal"] and checks["verify_ok"]
          and not checks["temp_files_left"] and checks.get("billing_within_bound", True))
    report |= {"ok": ok, "kills": n_killed, "attempts": [asdict(a) for a in attempts], "phases_killed": phases_hit,
               "checks": checks, "problems": problems, "probe_tokens": probe,
               "seconds": round(time.monotonic() - t_all, 1)}
    if own_tmp and ok:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("local", "api", "both"), default="both")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--docs", type=int, default=96, help="documents from fixtures/sample")
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    backends = ("local", "api") if args.backend == "both" else (args.backend,)
    reports = []
    for b in backends:
        work = args.work / b if args.work else None
        reports.append(crash_test(b, kills=args.kills, seed=args.seed, work=work, n_docs=args.docs,
                                  shard_size=args.shard_size, log=(lambda *_: None) if args.json else print))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            c = r["checks"]
            print(f"{r['backend']}: {'OK' if r['ok'] else 'FAILED'}  {r['kills']} kills in {len(r['attempts'])} attempts "
                  f"({r['seconds']}s); phases killed: {r['phases_killed']}; ids identical {c['ids_identical']}, "
                  f"vectors identical {c['vectors_identical']}, verify {c['verify_ok']}, tokens equal "
                  f"{c['tokens_total_equal']}" + (f", billed beyond one pass {c['billed_beyond_one_pass']} "
                                                  f"(bound {c['billed_bound']})" if 'billed_bound' in c else ""))
            for p in r["problems"]:
                print("  problem:", p)
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
