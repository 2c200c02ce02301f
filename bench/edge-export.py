"""Benchmark the ONNX edge export of SmolLM2-135M-Instruct on the CPU: parity and per-token latency.

Exports the prepared base model (merged graph, no adapter) and its int8 variant with the
worker's exporter, quantizes the merged graph a second time with ONNX Runtime's
quantize_dynamic (the int8 method the exporter used before, as the baseline), then
measures, in one run and on the same prompts:
- max absolute next-token logit difference and top-1 agreement of each ONNX variant vs PyTorch;
- milliseconds per generated token (greedy, KV cache, after the prompt) for PyTorch, ONNX fp32
  and both int8 graphs with onnxruntime's Python binding (the C++ runtime onnxruntime-node wraps).

Run from the repository root:

    nice -n 10 .venv/bin/python bench/edge-export.py [--tokens 32] [--out /tmp/edge-bench]

It prints one JSON object; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT / "gpu-runner"))

from worker.process import configure_offline_environment  # noqa: E402

configure_offline_environment()

import onnxruntime  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from worker.export_job import REFERENCE_PROMPTS  # noqa: E402
from worker.onnx_export import INT8_FILE, MERGED_FILE, export_bundle  # noqa: E402

MODEL_DIR = REPOSITORY_ROOT / ".data" / "models" / "smollm2-135m-instruct"


def onnx_step(session: onnxruntime.InferenceSession, manifest: dict, ids: list[int], past: dict | None, past_length: int):
    if past is None:
        shape = (1, manifest["numKeyValueHeads"], 0, manifest["headDim"])
        past = {f"past_key_values.{i}.{part}": np.zeros(shape, np.float32) for i in range(manifest["numLayers"]) for part in ("key", "value")}
    feeds = {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.ones((1, past_length + len(ids)), np.int64),
        "position_ids": np.arange(past_length, past_length + len(ids), dtype=np.int64)[None],
        **past,
    }
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feeds)))
    cache = {name.replace("present.", "past_key_values."): value for name, value in outputs.items() if name.startswith("present.")}
    return outputs["logits"][0], cache


def onnx_ms_per_token(session: onnxruntime.InferenceSession, manifest: dict, prompt: list[int], tokens: int) -> float:
    logits, cache = onnx_step(session, manifest, prompt, None, 0)
    token = int(logits[-1].argmax())
    start = time.perf_counter()
    for i in range(tokens):
        logits, cache = onnx_step(session, manifest, [token], cache, len(prompt) + i)
        token = int(logits[-1].argmax())
    return (time.perf_counter() - start) * 1000 / tokens


def torch_ms_per_token(model: torch.nn.Module, prompt: list[int], tokens: int) -> float:
    with torch.no_grad():
        output = model(input_ids=torch.tensor([prompt]), use_cache=True)
        cache, token = output.past_key_values, output.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(tokens):
            output = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, token = output.past_key_values, output.logits[:, -1:].argmax(-1)
    return (time.perf_counter() - start) * 1000 / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32, help="generated tokens per latency measurement")
    parser.add_argument("--out", type=Path, default=Path("/tmp/edge-bench"), help="folder for the exported bundle")
    arguments = parser.parse_args()

    start = time.perf_counter()
    manifest = export_bundle(MODEL_DIR, arguments.out)
    export_seconds = time.perf_counter() - start
    dynamic_file = "model.int8-dynamic.onnx"
    quantize_dynamic(str(arguments.out / MERGED_FILE), str(arguments.out / dynamic_file), weight_type=QuantType.QInt8)

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32, local_files_only=True).eval()
    prompts = [
        tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
        for text in REFERENCE_PROMPTS
    ]
    with torch.no_grad():
        reference = [model(input_ids=torch.tensor([ids])).logits[0, -1].numpy() for ids in prompts]

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "exportSeconds": round(export_seconds, 1),
        "prompts": len(prompts),
        "tokens": arguments.tokens,
        "pytorch": {"msPerToken": round(torch_ms_per_token(model, prompts[0], arguments.tokens), 2)},
    }
    for name, file in (("onnx-fp32", MERGED_FILE), ("onnx-int8", INT8_FILE), ("onnx-int8-dynamic", dynamic_file)):
        session = onnxruntime.InferenceSession(str(arguments.out / file), providers=["CPUExecutionProvider"])
        last = [onnx_step(session, manifest, ids, None, 0)[0][-1] for ids in prompts]
        result[name] = {
            "sizeBytes": (arguments.out / file).stat().st_size,
            "maxAbsLogitDiff": float(max(np.abs(a - b).max() for a, b in zip(last, reference))),
            "top1Agreement": sum(int(a.argmax() == b.argmax()) for a, b in zip(last, reference)) / len(prompts),
            "msPerToken": round(onnx_ms_per_token(session, manifest, prompts[0], arguments.tokens), 2),
        }
        result[name]["speedupVsPytorch"] = round(result["pytorch"]["msPerToken"] / result[name]["msPerToken"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
