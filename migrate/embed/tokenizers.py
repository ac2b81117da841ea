"""Where a model's tokenizer is on this machine, and loading it once.

What:
* ``load_tokenizer(path)``: a ``tokenizers.Tokenizer`` with truncation and padding off
  (counts must be raw), cached per file and modification time: XLM-R's tokenizer.json
  takes a second or two to parse and every part of the tool (planner, API client, local
  server) asks for the same few files.
* ``find_tokenizer(model)``: a catalogued model's tokenizer without network access: an
  explicit file or folder, the Hugging Face cache (offline), or the offline stand-in
  that shares the vocabulary (``migrate.embed.standins``).
* ``family_tokenizer(name)``: the same lookup by model *name* (``None`` for a name the
  catalogue does not know).

Why one module: the planner (``migrate.tokens``), the API client's estimator
(``jina_tokens``) and the bundled server all count tokens and must count them alike.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrate.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from migrate.models import ModelInfo


@dataclass(frozen=True)
class TokenizerRef:
    """Where the tokenizer came from and how far its counts can be trusted."""

    path: Path
    label: str
    stand_in: str | None = None  # name in migrate.embed.standins, when a stand-in

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "label": self.label, "stand_in": self.stand_in}


def tokenizer_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/tokenizer.json`` for a folder; ConfigError if there is none."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ConfigError(f"no tokenizer.json at {path}", hint="pass a tokenizer.json file or a model folder that has one")
    return p


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer in ``path`` (file or folder), parsed once per process and file version."""
    p = tokenizer_file(path)
    try:
        return _load_tokenizer_cached(str(p.resolve()), p.stat().st_mtime_ns)
    except ConfigError as exc:  # name the file as the user wrote it
        raise ConfigError(exc.message.replace(str(p.resolve()), str(p), 1), hint=exc.hint) from None


@functools.lru_cache(maxsize=8)
def _load_tokenizer_cached(path: str, mtime_ns: int) -> Any:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(path)
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exception on a bad file
        raise ConfigError(f"{path}: not a tokenizer.json ({str(exc).splitlines()[0][:120]})",
                          hint="pass the tokenizer.json of the model, or a folder holding it") from None
    tok.no_truncation()
    tok.no_padding()
    return tok


def find_tokenizer(model: ModelInfo, explicit: str | Path | None = None, *,
                   allow_stand_in: bool = True) -> TokenizerRef | None:
    """Locate ``model``'s tokenizer on this machine without any network access.

    Order: an explicit file/folder; the Hugging Face cache (offline); the offline
    stand-in that shares the vocabulary. None if absent.
    """
    if explicit:
        p = tokenizer_file(explicit)
        return TokenizerRef(p, f"{p} (given)")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model.hf_repo, "tokenizer.json")
        if isinstance(cached, str) and os.path.isfile(cached):
            return TokenizerRef(Path(cached), f"{model.hf_repo} tokenizer.json (Hugging Face cache)")
    except Exception:  # noqa: BLE001 - a broken cache only means "not found"
        pass
    if allow_stand_in and model.stand_in:
        try:
            from migrate.embed.standins import model_dir

            p = model_dir(model.stand_in) / "tokenizer.json"
        except Exception:  # noqa: BLE001 - stand-in packages not installed
            return None
        if p.is_file():
            return TokenizerRef(p, f"stand-in '{model.stand_in}' with the same vocabulary ({model.tokenizer})", model.stand_in)
    return None


def family_tokenizer(name: str) -> Path | None:
    """tokenizer.json of the catalogued model ``name`` or of a stand-in with its vocabulary."""
    from migrate.models import get_model

    try:
        ref = find_tokenizer(get_model(name))
    except ConfigError:  # not a catalogued Jina model
        return None
    return ref.path if ref is not None else None
