"""Jina model folders on disk: which layout a folder holds and how its pieces are found.

What: ``detect_layout`` tells the three layouts :mod:`migrate.embed.jina_v3` loads apart
(jina-embeddings-v3 transformers-native with PEFT task adapters in sub-folders named by
``adapter_folder``; v3 original remote code with ``lora_adaptations``; v2 JinaBERT remote
code); ``resolve_path`` finds a folder (or the offline HF cache entry); ``remote_class``
loads a remote-code class from the folder's own code files, offline.
Why separate: cheap to import (no torch), so ``local:`` can route a folder without
loading anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError

#: jina-embeddings-v3's supported Matryoshka sizes (config ``matryoshka_dimensions``).
V3_MATRYOSHKA = (32, 64, 128, 256, 512, 768, 1024)

LAYOUT_NATIVE = "v3-native"
LAYOUT_REMOTE_V3 = "v3-remote-code"
LAYOUT_REMOTE_V2 = "v2-remote-code"


def adapter_folder(task: str) -> str:
    """Sub-folder name of a task's adapter in the native layout (``retrieval.query`` -> ``retrieval_query``)."""
    return task.replace(".", "_").replace("-", "_")


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no config.json", hint="point at a model folder") from None
    except ValueError as exc:
        raise ConfigError(f"{path / 'config.json'}: not valid JSON ({exc})") from None


def detect_layout(path: Path) -> str:
    """Which of the three supported Jina layouts ``path`` holds; ConfigError otherwise."""
    cfg = read_config(path)
    if cfg.get("model_type") == "jina_embeddings_v3":
        return LAYOUT_NATIVE
    auto = json.dumps(cfg.get("auto_map", {}))
    if "lora_adaptations" in cfg or "XLMRobertaLoRA" in auto:
        return LAYOUT_REMOTE_V3
    if "JinaBert" in auto or cfg.get("model_type") == "jina_bert" or "JinaBert" in json.dumps(cfg.get("architectures", [])):
        return LAYOUT_REMOTE_V2
    raise ConfigError(
        f"{path}: not a jina-embeddings-v3/v2 folder (model_type {cfg.get('model_type')!r})",
        hint="use local:PATH for other models",
    )


def is_jina_model_dir(path: Path) -> bool:
    """True for folders :class:`JinaV3Embedder` can load (v3 native, v3 or v2 remote code)."""
    try:
        detect_layout(Path(path))
    except ConfigError:
        return False
    return True


def resolve_path(model: str) -> Path:
    """A local folder, or a hub id looked up in the offline HF cache only."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(model, local_files_only=True))
        except Exception:  # noqa: BLE001 - any miss in the offline cache is the same user error
            raise ConfigError(f"{model}: not in the local Hugging Face cache", hint="download it first, or pass a folder") from None
    raise ConfigError(f"{model}: model folder not found")


def remote_class(path: Path, cfg: dict[str, Any], key: str) -> Any:
    """The class ``auto_map[key]`` names, loaded from code files in ``path`` (offline)."""
    ref = cfg.get("auto_map", {}).get(key)
    if not ref:
        raise ConfigError(f"{path}: config.json has no auto_map entry {key!r}")
    ref = ref[-1] if isinstance(ref, list) else ref
    repo, _, local_ref = ref.rpartition("--")
    module_file = local_ref.split(".")[0] + ".py"
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    if (path / module_file).exists():
        return get_class_from_dynamic_module(local_ref, str(path), local_files_only=True)
    if repo:
        try:
            return get_class_from_dynamic_module(ref, str(path), local_files_only=True)
        except Exception:  # noqa: BLE001
            pass
    raise ConfigError(
        f"{path}: the model's code file {module_file} is not there and {repo or 'its code repo'} is not in the offline HF cache",
        hint=f"copy {module_file} (and the files it imports) into the model folder",
    )
