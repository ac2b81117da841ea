"""``jina-migrate label``: grade a seeded sample of pooled (query, document) pairs, in the terminal or elsewhere.

The pairs come from ``compare ... --pool-out POOL`` (both sides' top-k for every query, with their
text). ``label`` draws a uniform random sample of them with ``--seed`` (the order is a hash of
seed, query id and document id, so it never depends on the file's order), and:

* shows them one at a time in the terminal (rich): keys ``0``-``3`` grade the pair (0 not relevant,
  1 related, 2 partly answers, 3 answers), ``s`` skips it, ``b`` goes back to the previous pair (its
  new grade wins), ``q`` quits. Each answer is appended to ``--labels`` at once (flushed and synced),
  so quitting or a crash loses nothing, and a rerun resumes at the first pair not yet answered.
  Which side ranked a document is never shown: the labeller grades blind. Without a terminal the
  keys are read one per line from standard input (scripts, tests);
* or ``--export FILE.csv`` writes the sample as a CSV (qid, doc_id, query, text, grade) to grade
  elsewhere (a spreadsheet, a labelling tool), and ``--import FILE.csv`` checks the grades and appends
  them to ``--labels``.

``compare --labels FILE`` then combines the grades with a judge by prediction-powered inference
(or uses them alone): that needs the labels to be a random sample of the pooled pairs, which is what
this command draws. A few hundred labels usually decide a difference a judge alone cannot.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

DEFAULT_SAMPLE = 200
GRADE_WORDS = {0: "not relevant", 1: "related", 2: "partly answers", 3: "answers"}
SHOW_CHARS = 1500


def register(app: typer.Typer) -> None:
    app.command("label")(label_command)


def _order(seed: int, qid: str, doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{qid}\0{doc_id}".encode(), digest_size=8).digest(), "big")


def sample_pairs(pairs: list[Any], n: int, seed: int) -> list[Any]:
    """A uniform random sample of ``n`` pairs, ordered by a hash of (seed, qid, doc_id)."""
    if n < 1:
        from migrate.errors import ConfigError

        raise ConfigError(f"--sample {n} must be at least 1", hint=f"the default is {DEFAULT_SAMPLE}")
    return sorted(pairs, key=lambda p: _order(seed, p.qid, p.doc_id))[:n]


# --------------------------------------------------------------------------- the labels file


def _answered(path: Path) -> dict[tuple[str, str], int | None]:
    """Pairs already answered in ``path`` (grade, or None for a skip); a later line wins."""
    from migrate.report.data import read_labels

    if not path.exists():
        return {}
    read_labels(path)  # every line checked: a damaged file is one error line before anything is appended
    out: dict[tuple[str, str], int | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            out[(obj["qid"], obj["doc_id"])] = obj.get("grade")
    return out


class LabelsFile:
    """Appends answers to the labels file, each synced to disk before the next pair is shown."""

    def __init__(self, path: Path) -> None:
        from migrate.errors import ConfigError

        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ConfigError(f"--labels {path}: cannot write ({exc.strerror})", hint="point --labels at a writable "
                                                                                        "file") from None

    def write(self, qid: str, doc_id: str, grade: int | None) -> None:
        rec: dict[str, Any] = {"qid": qid, "doc_id": doc_id, "grade": grade}
        if grade is None:
            rec["skip"] = True
        self.fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# --------------------------------------------------------------------------- keys


def _keys_from_tty() -> Iterator[str]:
    """Single key presses from the terminal (no Enter needed)."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)  # once, without flushing: keys typed ahead are kept
    try:
        while True:
            ch = os.read(fd, 1).decode("utf-8", "replace")
            if ch in ("", "\x04"):
                return
            if ch == "\x03":
                raise KeyboardInterrupt
            yield ch
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _keys_from_lines() -> Iterator[str]:
    """One key per line of standard input (piped keys); the end of input quits."""
    for line in sys.stdin:
        key = line.strip()
        if key:
            yield key


# --------------------------------------------------------------------------- interactive


def _show(con: Any, pair: Any, i: int, n: int, done: int) -> None:
    from rich.panel import Panel
    from rich.text import Text

    text = pair.text if len(pair.text) <= SHOW_CHARS else pair.text[:SHOW_CHARS].rstrip() + " …"
    con.rule(f"pair {i + 1} of {n} · {done} answered")
    con.print(Panel(Text(pair.query), title=f"query {pair.qid}", title_align="left"))
    con.print(Panel(Text(text), title=f"document {pair.doc_id}", title_align="left"))
    con.print("grade: " + "  ".join(f"[bold]{g}[/] {w}" for g, w in GRADE_WORDS.items())
              + "  ·  [bold]s[/] skip  [bold]b[/] back  [bold]q[/] quit", highlight=False)


def label_interactive(sample: list[Any], out: LabelsFile, answered: dict[tuple[str, str], int | None],
                      keys: Iterator[str], con: Any) -> dict[str, int]:
    """Walk the sample from the first unanswered pair; returns counts of what this session recorded."""
    counts = {"graded": 0, "skipped": 0}
    history: list[int] = []
    i = next((j for j, p in enumerate(sample) if (p.qid, p.doc_id) not in answered), len(sample))
    while i < len(sample):
        pair = sample[i]
        _show(con, pair, i, len(sample), sum(1 for p in sample if (p.qid, p.doc_id) in answered))
        key = next(keys, "q").lower()
        if key == "q":
            break
        if key == "b":
            if history:
                i = history.pop()
            else:
                con.print("[yellow]this is the first pair of the session[/]")
            continue
        if key == "s" or key in ("0", "1", "2", "3"):
            grade = None if key == "s" else int(key)
            out.write(pair.qid, pair.doc_id, grade)
            answered[(pair.qid, pair.doc_id)] = grade
            counts["skipped" if grade is None else "graded"] += 1
            history.append(i)
            i = next((j for j in range(i + 1, len(sample)) if (sample[j].qid, sample[j].doc_id) not in answered),
                     len(sample))
            continue
        con.print(f"[yellow]{key!r} is not a key here[/]: 0-3, s, b or q")
    return counts


# --------------------------------------------------------------------------- CSV


def export_csv(path: Path, sample: list[Any], answered: dict[tuple[str, str], int | None]) -> int:
    from migrate.atomic import write_text

    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["qid", "doc_id", "query", "text", "grade"])
    for p in sample:
        g = answered.get((p.qid, p.doc_id))
        w.writerow([p.qid, p.doc_id, p.query, p.text, "" if g is None else g])
    write_text(path, buf.getvalue())
    return len(sample)


def import_csv(path: Path, pool_keys: set[tuple[str, str]], pool_path: Path) -> dict[tuple[str, str], int]:
    """The graded rows of ``path``; every one must be a pair of the pool (one error line naming the row)."""
    from migrate.errors import InputError
    from migrate.report.data import parse_grade, read_text

    if not path.is_file():
        raise InputError(f"--import {path}: file not found", hint="give the CSV that --export wrote, with grades filled in")
    out: dict[tuple[str, str], int] = {}
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not {"qid", "doc_id", "grade"} <= set(reader.fieldnames or []):
        raise InputError(f"{path}: the header must name qid, doc_id and grade (got {reader.fieldnames})",
                         hint="use the CSV that `jina-migrate label --export` wrote")
    for n, row in enumerate(reader, 2):
        if not (row.get("grade") or "").strip():
            continue  # not graded (yet)
        key = (row.get("qid") or "", row.get("doc_id") or "")
        if key not in pool_keys:
            raise InputError(f"{path}:{n}: the pair ({key[0]}, {key[1]}) is not in the pool {pool_path}",
                             hint="grade the pairs --export wrote from this pool; keep the qid and doc_id columns")
        out[key] = parse_grade(row["grade"], f"{path}:{n}")
    return out


# --------------------------------------------------------------------------- the command


def label_command(
    pool: Annotated[Path, typer.Argument(help="The pooled pairs compare wrote with --pool-out.")],
    labels: Annotated[Optional[Path], typer.Option(help="Labels file (JSONL) to append to and resume from; what compare --labels reads.")] = None,
    sample: Annotated[int, typer.Option(help="Pairs drawn from the pool (a uniform random sample, by --seed).")] = DEFAULT_SAMPLE,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    export: Annotated[Optional[Path], typer.Option("--export", help="Write the sample as CSV (qid, doc_id, query, text, grade) to grade elsewhere.")] = None,
    import_: Annotated[Optional[Path], typer.Option("--import", help="Read grades from a CSV --export wrote and append them to --labels.")] = None,
) -> None:
    """Grade a seeded sample of pooled (query, document) pairs: keys 0-3, s skip, b back, q quit (resumes)."""
    from rich.console import Console

    from migrate.errors import ConfigError
    from migrate.report.labelfree import read_pool

    if export is not None and import_ is not None:
        raise ConfigError("--export and --import: one at a time", hint="export, grade the CSV, then import it")
    if export is None and labels is None:
        raise ConfigError("label needs --labels FILE (where the grades go)", hint="or --export FILE.csv to grade elsewhere")
    pairs = read_pool(pool)
    chosen = sample_pairs(pairs, sample, seed)
    answered = _answered(labels) if labels is not None else {}
    con = Console(stderr=False, highlight=False)
    if export is not None:
        n = export_csv(export, chosen, answered)
        con.print(f"exported {n} pairs (of {len(pairs)} pooled, seed {seed}) to {export}: fill in the grade column "
                  f"(0-3, empty to skip), then: jina-migrate label {pool} --import {export} --labels FILE",
                  markup=False)
        return
    assert labels is not None
    if import_ is not None:
        graded = import_csv(import_, {(p.qid, p.doc_id) for p in pairs}, pool)
        out = LabelsFile(labels)
        try:
            for (qid, did), g in graded.items():
                out.write(qid, did, g)
        finally:
            out.close()
        con.print(f"imported {len(graded)} grades from {import_} into {labels}", markup=False)
        return
    out = LabelsFile(labels)
    keys: Callable[[], Iterator[str]] = _keys_from_tty if sys.stdin.isatty() else _keys_from_lines
    try:
        counts = label_interactive(chosen, out, answered, keys(), con)
    except KeyboardInterrupt:
        counts = None
    finally:
        out.close()
    total = sum(1 for p in chosen if (p.qid, p.doc_id) in answered)
    done = "" if counts is None else f"{counts['graded']} graded and {counts['skipped']} skipped now; "
    con.print(f"{done}{total} of {len(chosen)} sampled pairs answered, saved in {labels}"
              + ("" if total == len(chosen) else " (run the same command again to go on)"), markup=False)
