"""What the planner needs to know about embedder specs, in one place.

The planner writes the spec ``run`` will use (``run_config["model"]``) and loads a local
model to plan for it. Spec prefixes belong to ``migrate.embed.registry``; until the
registry answers these questions itself (``backend_for(spec)``), the three small
functions below are the only code in ``migrate.planning`` that knows them.
"""

from __future__ import annotations

from migrate.embed.base import EmbedderInfo

#: Backend names in ``EmbedderInfo.backend`` whose model is jina-embeddings-v3 with its adapters.
_V3_LOCAL_BACKENDS = ("jina-local",)


def api_spec(model_name: str) -> str:
    """The spec of ``model_name`` served by the Jina API (what ``run --model`` takes)."""
    return f"jina-api:{model_name}"


def local_spec(model: str) -> str:
    """``--local-model`` as a spec: a ``backend:...`` spec as given, a folder or name as ``local:...``."""
    from migrate.embed.registry import backends

    prefix, sep, _ = model.partition(":")
    return model if sep and prefix in backends() else f"local:{model}"


def runs_v3(info: EmbedderInfo) -> bool:
    """Whether a loaded embedder is jina-embeddings-v3 (task adapters, v3 prompts, Matryoshka)."""
    return info.backend in _V3_LOCAL_BACKENDS
