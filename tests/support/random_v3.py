"""Randomly initialised jina-embeddings-v3 folders for tests and benchmarks (test-only code).

``write_random_v3`` writes the real ``JinaEmbeddingsV3Model`` architecture at a small
size with an XLM-R-shaped tokenizer and one random PEFT LoRA adapter per task, in the
transformers-native layout that ``migrate.embed.jina_v3`` loads. No real weights are
available offline, so the local v3 backend is tested on these.

Tests import it as ``from support.random_v3 import write_random_v3`` (pytest puts
``tests/`` on ``sys.path``); bench scripts add ``tests/`` to the path themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migrate.models import V3_TASK_PREFIXES, V3_TASKS
from migrate.embed.jina_layout import adapter_folder


def write_random_v3(
    path: Path | str,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    intermediate: int | None = None,
    vocab_size: int | None = None,
    max_positions: int = 8194,
    adapters: Sequence[str] = V3_TASKS,
    matryoshka: Sequence[int] | None = None,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised jina-embeddings-v3 folder in the transformers-native layout.

    For tests and throughput checks (no real weights are available offline): the real
    ``JinaEmbeddingsV3Model`` architecture at the given size, an XLM-R-style Unigram
    tokenizer (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, Metaspace) built with the
    ``tokenizers`` library, the v3 ``task_instructions`` in the config, and one random
    PEFT LoRA adapter (rank 4, alpha 1, on every linear and the word embeddings) per task
    in ``<task_with_underscores>/``.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import JinaEmbeddingsV3Config, JinaEmbeddingsV3Model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _random_tokenizer(max_positions - 2)
    tok.save_pretrained(str(path))
    torch.manual_seed(seed)
    cfg = JinaEmbeddingsV3Config(
        vocab_size=vocab_size or len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden, max_position_embeddings=max_positions,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
        lora_adaptations=list(V3_TASKS), task_instructions={t: V3_TASK_PREFIXES[t] for t in V3_TASKS},
        matryoshka_dimensions=list(matryoshka or [d for d in (8, 16, 32, 64, 128, 256, 512, 768, 1024) if d <= hidden]),
    )
    model = JinaEmbeddingsV3Model(cfg, add_pooling_layer=False).eval()
    model.save_pretrained(str(path))
    lora = dict(r=4, lora_alpha=1, lora_dropout=0.0, init_lora_weights=False,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "word_embeddings"])
    for i, task in enumerate(adapters):
        torch.manual_seed(seed + 1 + i)
        peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(**lora))
        peft_model.save_pretrained(str(path / adapter_folder(task)))
        del peft_model
    return path


_WORDS = (
    "the of and to in is was for on that with as by at from are be this which or an it its not have has were "
    "but their more can other these been one all may also new after when there than into some two between time "
    "first cells protein gene expression cancer patients study results risk increased activity effect analysis "
    "level data human treatment disease mice role associated cell response found clinical function model high "
    "low we our represent query document retrieval evidence retrieving passage hello world chunk here third "
    "second sentence late chunking embedding vector search index migration"
).split()


def _random_tokenizer(max_length: int) -> Any:
    """XLM-R-shaped fast tokenizer: Unigram pieces for common words plus single characters."""
    import string

    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces: list[tuple[str, float]] = [(s, 0.0) for s in specials]
    seen = set(specials)
    for w in _WORDS:
        for p in ("\u2581" + w, w):
            if p not in seen:
                seen.add(p)
                pieces.append((p, -2.0 - 0.1 * len(p)))
    for ch in string.ascii_letters + string.digits + string.punctuation + "\u2581":
        for p in (ch, "\u2581" + ch):
            if p not in seen:
                seen.add(p)
                pieces.append((p, -8.0))
    t = Tokenizer(Unigram(pieces, unk_id=3, byte_fallback=False))
    t.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=t, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        cls_token="<s>", sep_token="</s>", model_max_length=max_length,
    )
