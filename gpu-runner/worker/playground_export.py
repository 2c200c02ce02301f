"""Export a Llama-family base model to ONNX for the web playground (onnxruntime-node on the CPU).

    python -m worker.playground_export --model DIR --out DIR [--max-rank 64]
    python -m worker.playground_export --model DIR --adapter DIR --merged --out DIR

The default graph is the shared base: every attention and MLP projection computes
`W x + B (A x)` with `lora.{i}.{module}.A` [r_max, in] and `lora.{i}.{module}.B` [out, r_max]
as graph inputs, so one session serves every LoRA adapter of the base model and all-zero
inputs give the base model. `--merged` writes an ordinary graph with the adapter merged into
the weights instead (the baseline of bench/playground-switch.ts). Inputs, outputs and
manifest.json follow docs/edge.md.

The model is written out by hand (RMSNorm, rotary embeddings, grouped-query attention,
SiLU MLP) instead of tracing transformers' LlamaForCausalLM, because its cache and mask
code does not trace to a graph with a dynamic past length. The tests check the graph against
transformers with the adapter merged by PEFT. Only safetensors files are read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json", "config.json")
OPSET = 17


class ExportError(ValueError):
    pass


def _rope_theta(config: dict[str, Any]) -> float:
    parameters = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    kind = parameters.get("rope_type", scaling.get("rope_type", "default"))
    if kind not in ("default", None):
        raise ExportError(f"rope_type {kind!r} is not supported by the playground exporter; only the default rotary embedding is")
    return float(parameters.get("rope_theta", config.get("rope_theta", 10000.0)))


class SharedBaseLlama(nn.Module):
    """A Llama decoder with LoRA factors and the key/value cache as inputs."""

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, Any], lora_inputs: bool) -> None:
        super().__init__()
        if config.get("model_type") != "llama":
            raise ExportError(f"model_type {config.get('model_type')!r} is not supported; the playground exporter handles Llama models")
        if config.get("attention_bias") or config.get("mlp_bias"):
            raise ExportError("attention_bias and mlp_bias must be false for the playground exporter")
        self.num_layers = int(config["num_hidden_layers"])
        self.num_heads = int(config["num_attention_heads"])
        self.num_kv_heads = int(config.get("num_key_value_heads", self.num_heads))
        self.hidden_size = int(config["hidden_size"])
        self.head_dim = int(config.get("head_dim") or self.hidden_size // self.num_heads)
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        self.lora_inputs = lora_inputs
        theta = _rope_theta(config)
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)), persistent=False)
        self.weights = nn.ParameterDict({name.replace(".", "__"): nn.Parameter(tensor.float(), requires_grad=False) for name, tensor in weights.items()})
        if "lm_head.weight" not in weights:
            self.weights["lm_head__weight"] = self.weights["model__embed_tokens__weight"]

    def weight(self, name: str) -> torch.Tensor:
        return self.weights[name.replace(".", "__")]

    def linear(self, x: torch.Tensor, layer: int, path: str, module: str, lora: dict[str, torch.Tensor]) -> torch.Tensor:
        y = x @ self.weight(f"model.layers.{layer}.{path}.{module}.weight").t()
        if self.lora_inputs:
            a = lora[f"lora.{layer}.{module}.A"]
            b = lora[f"lora.{layer}.{module}.B"]
            y = y + (x @ a.t()) @ b.t()
        return y

    def rms_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(variance + self.eps) * self.weight(name)

    @staticmethod
    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *rest: torch.Tensor):  # noqa: ANN201
        past = rest[: 2 * self.num_layers]
        lora = dict(zip(lora_input_names(self.num_layers), rest[2 * self.num_layers :], strict=False)) if self.lora_inputs else {}
        batch, seq = input_ids.shape[0], input_ids.shape[1]
        hidden = self.weight("model.embed_tokens.weight")[input_ids]

        freqs = position_ids.unsqueeze(-1).float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos().unsqueeze(1)
        sin = emb.sin().unsqueeze(1)

        # Key j may be read by query i (at cache index past + i) when j <= past + i and the
        # attention mask marks j as a real token; past = total - seq.
        total = attention_mask.shape[1]
        key_index = torch.arange(total, device=input_ids.device).view(1, 1, 1, total)
        query_index = (torch.arange(seq, device=input_ids.device) + (total - seq)).view(1, 1, seq, 1)
        allowed = (key_index <= query_index) & (attention_mask.view(batch, 1, 1, total) > 0)
        bias = torch.where(allowed, torch.zeros((), dtype=torch.float32), torch.full((), -1e9, dtype=torch.float32))

        presents: list[torch.Tensor] = []
        group = self.num_heads // self.num_kv_heads
        for i in range(self.num_layers):
            x = self.rms_norm(hidden, f"model.layers.{i}.input_layernorm.weight")
            q = self.linear(x, i, "self_attn", "q_proj", lora).view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)
            k = self.linear(x, i, "self_attn", "k_proj", lora).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
            v = self.linear(x, i, "self_attn", "v_proj", lora).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = torch.cat((past[2 * i], k), dim=2)
            v = torch.cat((past[2 * i + 1], v), dim=2)
            presents.extend((k, v))
            k_all = k.unsqueeze(2).expand(batch, self.num_kv_heads, group, total, self.head_dim).reshape(batch, self.num_heads, total, self.head_dim)
            v_all = v.unsqueeze(2).expand(batch, self.num_kv_heads, group, total, self.head_dim).reshape(batch, self.num_heads, total, self.head_dim)
            scores = (q @ k_all.transpose(2, 3)) / math.sqrt(self.head_dim) + bias
            attended = (scores.softmax(-1) @ v_all).transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim)
            hidden = hidden + self.linear(attended, i, "self_attn", "o_proj", lora)

            x = self.rms_norm(hidden, f"model.layers.{i}.post_attention_layernorm.weight")
            gate = self.linear(x, i, "mlp", "gate_proj", lora)
            up = self.linear(x, i, "mlp", "up_proj", lora)
            hidden = hidden + self.linear(torch.nn.functional.silu(gate) * up, i, "mlp", "down_proj", lora)

        hidden = self.rms_norm(hidden, "model.norm.weight")
        logits = hidden @ self.weight("lm_head.weight").t()
        return (logits, *presents)


def lora_input_names(num_layers: int) -> list[str]:
    return [f"lora.{i}.{module}.{factor}" for i in range(num_layers) for module in LORA_MODULES for factor in ("A", "B")]


def module_features(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Returns (in_features, out_features) of each LoRA-target module."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads", heads))
    head_dim = int(config.get("head_dim") or hidden // heads)
    intermediate = int(config["intermediate_size"])
    return {
        "q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim), "v_proj": (hidden, kv_heads * head_dim),
        "o_proj": (heads * head_dim, hidden), "gate_proj": (hidden, intermediate), "up_proj": (hidden, intermediate),
        "down_proj": (intermediate, hidden),
    }


def merge_adapter(weights: dict[str, torch.Tensor], adapter_dir: Path) -> dict[str, Any]:
    """Adds scale · B A to every weight the adapter targets (what PEFT's merge_and_unload does for plain LoRA)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora"):
        raise ExportError("only plain LoRA adapters (peft_type LORA, no DoRA) can be merged by the playground exporter")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ExportError("rank_pattern and alpha_pattern are not supported by the playground exporter's merge")
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    rank, alpha = int(config["r"]), float(config.get("lora_alpha", 8))
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    merged = 0
    for name, a in tensors.items():
        if not name.endswith(".lora_A.weight"):
            continue
        module = name.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b = tensors[name.replace(".lora_A.", ".lora_B.")]
        weights[f"{module}.weight"] = weights[f"{module}.weight"].float() + scale * (b.float() @ a.float())
        merged += 1
    return {"rank": rank, "alpha": alpha, "useRslora": bool(config.get("use_rslora")), "mergedModules": merged}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export(model_dir: Path, out: Path, max_rank: int = 64, adapter_dir: Path | None = None, merged: bool = False) -> dict[str, Any]:
    """Write the graph, manifest.json and the tokenizer files into `out`; return the manifest."""
    if not (model_dir / "model.safetensors").is_file():
        raise ExportError(f"{model_dir} has no model.safetensors; pass a base model folder written by `python -m worker prepare-base`")
    if not 1 <= max_rank <= 1024:
        raise ExportError(f"--max-rank must be between 1 and 1024, got {max_rank}")
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    adapter = merge_adapter(weights, adapter_dir) if adapter_dir is not None else None
    lora_inputs = not merged
    model = SharedBaseLlama(weights, config, lora_inputs=lora_inputs).eval()
    layers, kv_heads, head_dim = model.num_layers, model.num_kv_heads, model.head_dim
    features = module_features(config)

    # Traced with a cache of 1 token and 2 new tokens, so no dimension is specialized to 0 or 1.
    batch, seq, past = 1, 2, 1
    args: list[torch.Tensor] = [
        torch.zeros((batch, seq), dtype=torch.int64), torch.ones((batch, past + seq), dtype=torch.int64),
        torch.arange(past, past + seq, dtype=torch.int64).view(1, seq),
    ]
    past_names = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    args += [torch.zeros((batch, kv_heads, past, head_dim)) for _ in past_names]
    lora_names = lora_input_names(layers) if lora_inputs else []
    for name in lora_names:
        module, factor = name.split(".")[2], name.split(".")[3]
        in_features, out_features = features[module]
        args.append(torch.zeros((max_rank, in_features)) if factor == "A" else torch.zeros((out_features, max_rank)))
    present_names = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    input_names = ["input_ids", "attention_mask", "position_ids", *past_names, *lora_names]
    output_names = ["logits", *present_names]
    dynamic_axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total_seq"}, "position_ids": {0: "batch", 1: "seq"},
        "logits": {0: "batch", 1: "seq"},
    }
    for name in past_names:
        dynamic_axes[name] = {0: "batch", 2: "past_seq"}
    for name in present_names:
        dynamic_axes[name] = {0: "batch", 2: "total_seq"}

    out.mkdir(parents=True, exist_ok=True)
    file_name = "model.lora.onnx" if lora_inputs else "model.onnx"
    with torch.no_grad():
        torch.onnx.export(model, tuple(args), str(out / file_name), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=False)

    def describe(name: str, tensor_shape: list[Any], dtype: str) -> dict[str, Any]:
        return {"name": name, "dtype": dtype, "shape": tensor_shape}

    inputs = [describe("input_ids", ["batch", "seq"], "int64"), describe("attention_mask", ["batch", "total_seq"], "int64"),
              describe("position_ids", ["batch", "seq"], "int64")]
    inputs += [describe(name, ["batch", kv_heads, "past_seq", head_dim], "float32") for name in past_names]
    for name in lora_names:
        module, factor = name.split(".")[2], name.split(".")[3]
        in_features, out_features = features[module]
        inputs.append(describe(name, [max_rank, in_features] if factor == "A" else [out_features, max_rank], "float32"))
    outputs = [describe("logits", ["batch", "seq", int(config["vocab_size"])], "float32")]
    outputs += [describe(name, ["batch", kv_heads, "total_seq", head_dim], "float32") for name in present_names]

    tokenizer = []
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out / name)
            tokenizer.append(name)
    data_files = sorted(path.name for path in out.iterdir() if path.name.startswith(file_name + ".") or path.suffix == ".data")
    files = [{"path": name, "size": (out / name).stat().st_size, "sha256": _sha256(out / name)} for name in [file_name, *data_files, *tokenizer]]
    manifest: dict[str, Any] = {
        "formatVersion": 1, "opset": OPSET, "architecture": "LlamaForCausalLM", "numLayers": layers, "numKeyValueHeads": kv_heads,
        "headDim": head_dim, "hiddenSize": model.hidden_size, "vocabSize": int(config["vocab_size"]), "adapter": adapter,
        "variants": [{"name": "lora-inputs" if lora_inputs else "merged", "file": file_name, "dataFiles": data_files, "inputs": inputs, "outputs": outputs}],
        "files": files, "tokenizer": tokenizer,
    }
    if lora_inputs:
        manifest["maxRank"] = max_rank
        manifest["loraModules"] = list(LORA_MODULES)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.playground_export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="base model folder (config.json, model.safetensors, tokenizer files)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--max-rank", type=int, default=64, help="r_max: rows of every LoRA A input and columns of every B input (default 64)")
    parser.add_argument("--adapter", type=Path, default=None, help="PEFT LoRA adapter folder to merge (with --merged)")
    parser.add_argument("--merged", action="store_true", help="write a graph without LoRA inputs, with --adapter merged into the weights")
    arguments = parser.parse_args(argv)
    if arguments.adapter is not None and not arguments.merged:
        parser.error("--adapter needs --merged; the shared base graph takes adapters as inputs at run time")
    try:
        manifest = export(arguments.model, arguments.out, arguments.max_rank, arguments.adapter, arguments.merged)
    except (OSError, ExportError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"out": str(arguments.out.resolve()), "files": manifest["files"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
