#!/usr/bin/env bash
# GPU check of the local jina-embeddings-v3 backend (issue 6).
# Random-weight v3-sized model (24 layers, hidden 1024); prints tokens/s for bf16 vs fp32
# and padded (fixed batches, input order) vs length-sorted token-budget batches.
#   bash bench/gpu_check.sh            # on a GPU machine
#   bash bench/gpu_check.sh --tiny     # CPU dry run with a 2-layer model
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
"$PY" - <<'PYEOF'
import importlib
for m in ("torch", "transformers", "peft", "tokenizers", "numpy"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as exc:  # report, keep going: the python script says what is missing
        print(m, "MISSING", exc)
import transformers
print("JinaEmbeddingsV3Model available:", hasattr(transformers, "JinaEmbeddingsV3Model"))
PYEOF
if ! "$PY" bench/gpu_check.py "$@"; then
  echo "== run with task adapters failed; rerunning without adapters (--task none) =="
  "$PY" bench/gpu_check.py --no-adapters "$@"
fi
