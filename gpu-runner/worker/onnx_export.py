"""ONNX export of a Llama-family causal LM, with or without a LoRA adapter (see docs/edge.md).

Two graph variants share one forward pass written here with plain tensor operations:

- merged: the adapter is merged into the base weights (PEFT merge_and_unload) and the
  graph has a key/value cache;
- lora-inputs: the base weights once, where every LoRA-target linear layer computes
  `W x + B (A x)` with A and B as graph inputs of a dynamic rank.

The forward pass is written out instead of tracing transformers' own modeling code,
because that code builds its cache and masks with Python objects that the TorchScript
exporter cannot follow across dynamic sequence lengths. The weights, rotary
frequencies and norms are the loaded model's own modules, and tests compare the
graphs' logits with transformers'. The int8 variant stores the merged graph's weights
as int8 (see quantize_int8).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from .errors import DataError, SpecError
from .spec import BLOCK_LINEAR_MODULES

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
OPSET = 17
DEFAULT_MAX_RANK = 64
MERGED_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
LORA_FILE = "model.lora.onnx"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
SUPPORTED_MODEL_TYPES = ("llama",)
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
# Past and present cache length symbols; `total_seq` is past_seq + seq.
BATCH, SEQ, PAST_SEQ, TOTAL_SEQ = "batch", "seq", "past_seq", "total_seq"


def _module_owner(module_name: str) -> str:
    return "self_attn" if module_name in ATTENTION_MODULES else "mlp"


class DecoderGraph(nn.Module):
    """The causal LM forward pass that the ONNX graphs contain.

    Positional arguments are, in order: input_ids, attention_mask, position_ids, then the
    key and value cache of each layer, then (when `max_rank` is set) A and B of each
    layer and module in BLOCK_LINEAR_MODULES order.
    """

    def __init__(self, model: Any, max_rank: int | None) -> None:
        super().__init__()
        config = model.config
        self.model = model
        self.max_rank = max_rank
        self.num_layers = config.num_hidden_layers
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        rotary = model.model.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().clone().float(), persistent=False)
        self.rotary_scaling = float(getattr(rotary, "attention_scaling", 1.0))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *rest: torch.Tensor):
        past = rest[: 2 * self.num_layers]
        lora = rest[2 * self.num_layers :]
        decoder = self.model.model
        hidden = decoder.embed_tokens(input_ids)

        seq = input_ids.shape[1]
        total = attention_mask.shape[1]
        key_positions = torch.arange(total, device=input_ids.device)
        query_positions = torch.arange(seq, device=input_ids.device) + (total - seq)
        allowed = (key_positions[None, :] <= query_positions[:, None])[None, None, None] & (attention_mask[:, None, None, None, :] > 0)
        # Shape [batch, 1, 1, seq, total], broadcast over key/value heads and query groups.
        bias = torch.where(allowed, torch.zeros((), dtype=hidden.dtype), torch.full((), torch.finfo(hidden.dtype).min, dtype=hidden.dtype))

        angles = position_ids[:, :, None].to(torch.float32) * self.inv_freq[None, None, :]
        angles = torch.cat((angles, angles), dim=-1)
        cos = (angles.cos() * self.rotary_scaling)[:, None]
        sin = (angles.sin() * self.rotary_scaling)[:, None]

        presents: list[torch.Tensor] = []
        for index, layer in enumerate(decoder.layers):
            adapters = lora[index * 2 * len(BLOCK_LINEAR_MODULES) : (index + 1) * 2 * len(BLOCK_LINEAR_MODULES)]

            def project(name: str, x: torch.Tensor) -> torch.Tensor:
                module = getattr(getattr(layer, _module_owner(name)), name)
                out = module(x)
                if adapters:
                    position = BLOCK_LINEAR_MODULES.index(name)
                    a, b = adapters[2 * position], adapters[2 * position + 1]
                    out = out + functional.linear(functional.linear(x, a), b)
                return out

            residual = hidden
            x = layer.input_layernorm(hidden)
            attention, present_key, present_value = self._attention(project, x, past[2 * index], past[2 * index + 1], cos, sin, bias)
            presents += [present_key, present_value]
            hidden = residual + attention

            residual = hidden
            x = layer.post_attention_layernorm(hidden)
            hidden = residual + project("down_proj", functional.silu(project("gate_proj", x)) * project("up_proj", x))

        logits = self.model.lm_head(decoder.norm(hidden))
        return (logits, *presents)

    def _attention(self, project: Any, x: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor,
                   cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq = x.shape[0], x.shape[1]
        groups = self.num_heads // self.num_kv_heads
        query = project("q_proj", x).reshape(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)
        key = project("k_proj", x).reshape(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        value = project("v_proj", x).reshape(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        query = query * cos + _rotate_half(query) * sin
        key = key * cos + _rotate_half(key) * sin
        key = torch.cat((past_key, key), dim=2)
        value = torch.cat((past_value, value), dim=2)

        # Query head h uses key/value head h // groups, as transformers' repeat_kv does.
        grouped = query.reshape(batch, self.num_kv_heads, groups, seq, self.head_dim)
        scores = torch.matmul(grouped, key[:, :, None].transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        weights = torch.softmax(scores, dim=-1)
        context = torch.matmul(weights, value[:, :, None]).reshape(batch, self.num_heads, seq, self.head_dim)
        context = context.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim)
        return project("o_proj", context), key, value


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def check_supported(config: Any, folder: Path) -> None:
    """Raise SpecError unless the model's architecture is one the forward pass above implements."""
    problems = []
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        problems.append(f"model_type {config.model_type!r} (supported: {list(SUPPORTED_MODEL_TYPES)})")
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {config.hidden_act!r} (supported: 'silu')")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") == "dynamic":
        problems.append("rope_type 'dynamic', whose frequencies depend on the sequence length")
    if problems:
        raise SpecError(f"base model {str(folder)!r} cannot be exported to ONNX: unsupported {', '.join(problems)}; export a Llama-family model")


def load_model(model_dir: Path, adapter_dir: Path | None) -> tuple[Any, dict[str, Any] | None]:
    """Load the base model in float32 and merge the adapter into it; return the model and the adapter's LoRA settings."""
    from .basemodel import load_base_model

    _, model = load_base_model(model_dir, torch.device("cpu"), torch.float32)
    check_supported(model.config, model_dir)
    adapter = None
    if adapter_dir is not None:
        from peft import PeftModel

        adapter = read_adapter_settings(adapter_dir)
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False).merge_and_unload()
    model.eval()
    return model, adapter


def read_adapter_settings(adapter_dir: Path) -> dict[str, Any]:
    """Validate a PEFT LoRA adapter folder (safetensors only) and return its rank, alpha, rsLoRA flag and targets."""
    missing = [name for name in ("adapter_config.json", "adapter_model.safetensors") if not (adapter_dir / name).is_file()]
    if missing:
        raise DataError(
            f"adapter folder {str(adapter_dir)!r} is missing {missing}; an export reads a PEFT adapter saved as safetensors "
            "(pickled .bin weights are never loaded)"
        )
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"adapter_config.json in {str(adapter_dir)!r} is not valid JSON: {error}") from error
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise DataError(f"adapter {str(adapter_dir)!r} has peft_type {peft_type!r}; only LORA adapters can be exported")
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        targets = list(BLOCK_LINEAR_MODULES) if targets == "all-linear" else [targets]
    return {
        "rank": int(config.get("r", 8)),
        "alpha": float(config.get("lora_alpha", 8)),
        "useRslora": bool(config.get("use_rslora", False)),
        "useDora": bool(config.get("use_dora", False)),
        "targetModules": sorted(str(target) for target in targets),
    }


def input_names(num_layers: int, lora: bool) -> list[str]:
    names = ["input_ids", "attention_mask", "position_ids"]
    for index in range(num_layers):
        names += [f"past_key_values.{index}.key", f"past_key_values.{index}.value"]
    if lora:
        for index in range(num_layers):
            for module in BLOCK_LINEAR_MODULES:
                names += [f"lora.{index}.{module}.A", f"lora.{index}.{module}.B"]
    return names


def output_names(num_layers: int) -> list[str]:
    names = ["logits"]
    for index in range(num_layers):
        names += [f"present.{index}.key", f"present.{index}.value"]
    return names


def module_shapes(model: Any) -> dict[str, tuple[int, int]]:
    """Return (in_features, out_features) of each LoRA-target module of the first decoder block."""
    layer = model.model.layers[0]
    shapes = {}
    for name in BLOCK_LINEAR_MODULES:
        linear = getattr(getattr(layer, _module_owner(name)), name)
        shapes[name] = (linear.in_features, linear.out_features)
    return shapes


def _example_inputs(graph: DecoderGraph, model: Any, max_rank: int | None) -> tuple[torch.Tensor, ...]:
    # Non-zero past and sequence lengths, so the tracer records both as dynamic dimensions.
    batch, seq, past = 1, 3, 2
    input_ids = torch.randint(0, model.config.vocab_size, (batch, seq), dtype=torch.int64)
    attention_mask = torch.ones((batch, past + seq), dtype=torch.int64)
    position_ids = torch.arange(past, past + seq, dtype=torch.int64)[None]
    cache = [torch.zeros((batch, graph.num_kv_heads, past, graph.head_dim)) for _ in range(2 * graph.num_layers)]
    lora: list[torch.Tensor] = []
    if max_rank is not None:
        shapes = module_shapes(model)
        for _ in range(graph.num_layers):
            for name in BLOCK_LINEAR_MODULES:
                in_features, out_features = shapes[name]
                lora += [torch.zeros((max_rank, in_features)), torch.zeros((out_features, max_rank))]
    return (input_ids, attention_mask, position_ids, *cache, *lora)


def export_graph(model: Any, out_path: Path, max_rank: int | None) -> None:
    """Export the model's forward pass with a key/value cache (and LoRA inputs when max_rank is set) to out_path."""
    graph = DecoderGraph(model, max_rank).eval()
    names_in = input_names(graph.num_layers, max_rank is not None)
    names_out = output_names(graph.num_layers)
    dynamic_axes: dict[str, dict[int, str]] = {
        "input_ids": {0: BATCH, 1: SEQ},
        "attention_mask": {0: BATCH, 1: TOTAL_SEQ},
        "position_ids": {0: BATCH, 1: SEQ},
        "logits": {0: BATCH, 1: SEQ},
    }
    for index in range(graph.num_layers):
        for part in ("key", "value"):
            dynamic_axes[f"past_key_values.{index}.{part}"] = {0: BATCH, 2: PAST_SEQ}
            dynamic_axes[f"present.{index}.{part}"] = {0: BATCH, 2: TOTAL_SEQ}
        if max_rank is not None:
            # A dynamic rank per module lets a caller feed an adapter's factors at their own rank,
            # with no padding copy, and a rank-1 zero pair for untargeted modules. max_rank is the
            # rank of the example inputs only; the manifest keeps it as the advertised bound.
            for module in BLOCK_LINEAR_MODULES:
                rank = f"rank.{index}.{module}"
                dynamic_axes[f"lora.{index}.{module}.A"] = {0: rank}
                dynamic_axes[f"lora.{index}.{module}.B"] = {1: rank}
    # NOTE: only models under the 2 GB protobuf limit have been exported. Larger ones would
    # need external data, and a bundle upload accepts at most 32 files.
    with torch.no_grad():
        # The TorchScript exporter (dynamo=False) still ships with torch 2.13, needs no
        # onnxscript package and keeps the dynamic axis names given here.
        torch.onnx.export(
            graph,
            _example_inputs(graph, model, max_rank),
            str(out_path),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


# MatMul weights are quantized in blocks of this many input rows, each with its own scale.
INT8_BLOCK_SIZE = 32


def quantize_int8(source: Path, target: Path) -> None:
    """Write the 8-bit weight-only copy of an fp32 graph.

    MatMul weights become MatMulNBits nodes (8 bits, symmetric, one scale per block of 32),
    and the embedding table becomes an int8 Gather with one scale. Activations stay float32
    except inside MatMulNBits, which accuracy level 4 lets compute with int8 inputs per block.
    ONNX Runtime's quantize_dynamic also quantized the activations per tensor at run time,
    which flipped the top token on 2 of the 4 reference prompts of SmolLM2-135M
    (docs/benchmarks.md, edge export).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8, block_size=INT8_BLOCK_SIZE, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    with tempfile.TemporaryDirectory() as scratch:
        matmuls = Path(scratch) / "matmul-int8.onnx"
        quantizer.model.save_model_to_file(str(matmuls), use_external_data_format=False)
        # MatMulNBitsQuantizer's Gather path needs a newer opset than the graphs use, so the
        # embedding goes through quantize_dynamic, which quantizes Gather weights only.
        quantize_dynamic(str(matmuls), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Read the inputs and outputs of an ONNX graph as {name, dtype, shape} lists, from the file itself."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def entries(values: Any) -> list[dict[str, Any]]:
        described = []
        for value in values:
            tensor = value.type.tensor_type
            shape = [dim.dim_param if dim.dim_param else int(dim.dim_value) for dim in tensor.shape.dim]
            described.append({"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": shape})
        return described

    return {"inputs": entries(model.graph.input), "outputs": entries(model.graph.output)}


def _data_files(graph_path: Path) -> list[str]:
    """Return the external data files an ONNX graph references, checking each stays in its folder."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(str(graph_path), load_external_data=False)
    files = set()
    for tensor in _get_all_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location":
                location = Path(entry.value)
                if location.is_absolute() or ".." in location.parts:
                    raise DataError(f"{graph_path.name} references external data {entry.value!r} outside its folder")
                files.add(entry.value)
    return sorted(files)


def copy_tokenizer(model_dir: Path, out_dir: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out_dir / name)
            copied.append(name)
    if "tokenizer.json" not in copied:
        raise SpecError(f"base model folder {str(model_dir)!r} has no tokenizer.json; an edge bundle must carry its tokenizer")
    return copied


def export_bundle(
    model_dir: Path,
    out_dir: Path,
    adapter_dir: Path | None = None,
    lora_inputs: bool = False,
    max_rank: int = DEFAULT_MAX_RANK,
    merged: bool = True,
    int8: bool = True,
) -> dict[str, Any]:
    """Export the requested variants, copy the tokenizer and write manifest.json last; return the manifest."""
    if not 1 <= max_rank <= 4096:
        raise SpecError(f"max rank {max_rank} is out of range; use 1 to 4096 (the default is {DEFAULT_MAX_RANK})")
    if not (merged or lora_inputs):
        raise SpecError("nothing to export; request the merged variant, the lora-inputs variant or both")
    if int8 and not merged:
        raise SpecError("the int8 variant quantizes the merged graph; request the merged variant with it")
    out_dir.mkdir(parents=True, exist_ok=True)

    variants: list[dict[str, Any]] = []
    model, adapter = load_model(model_dir, adapter_dir)
    if adapter is not None and adapter["useDora"] and lora_inputs:
        raise DataError(f"adapter {str(adapter_dir)!r} is a DoRA adapter, which the lora-inputs graph cannot express; export the merged variant")
    if merged:
        log.info("exporting the merged graph to %s", out_dir / MERGED_FILE)
        export_graph(model, out_dir / MERGED_FILE, None)
        variants.append({"name": "merged", "file": MERGED_FILE})
        if int8:
            log.info("quantizing to %s", out_dir / INT8_FILE)
            quantize_int8(out_dir / MERGED_FILE, out_dir / INT8_FILE)
            variants.append({"name": "merged-int8", "file": INT8_FILE})
    if lora_inputs:
        base = model if adapter_dir is None else load_model(model_dir, None)[0]
        log.info("exporting the lora-inputs graph (max rank %d) to %s", max_rank, out_dir / LORA_FILE)
        export_graph(base, out_dir / LORA_FILE, max_rank)
        variants.append({"name": "lora-inputs", "file": LORA_FILE})

    for variant in variants:
        variant["dataFiles"] = _data_files(out_dir / variant["file"])
        variant.update(describe_io(out_dir / variant["file"]))
    tokenizer = copy_tokenizer(model_dir, out_dir)

    config = model.config
    graph = DecoderGraph(model, None)
    bundle_files = sorted({name for variant in variants for name in [variant["file"], *variant["dataFiles"]]} | set(tokenizer))
    manifest: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "opset": OPSET,
        "architecture": (config.architectures or ["LlamaForCausalLM"])[0],
        "numLayers": graph.num_layers,
        "numAttentionHeads": graph.num_heads,
        "numKeyValueHeads": graph.num_kv_heads,
        "headDim": graph.head_dim,
        "hiddenSize": config.hidden_size,
        "vocabSize": config.vocab_size,
        "eosTokenId": config.eos_token_id,
        "adapter": adapter,
        "variants": variants,
        "files": [{"path": name, "size": (out_dir / name).stat().st_size, "sha256": sha256_file(out_dir / name)} for name in bundle_files],
        "tokenizer": tokenizer,
    }
    if lora_inputs:
        manifest["maxRank"] = max_rank
        manifest["loraModules"] = list(BLOCK_LINEAR_MODULES)
        manifest["loraModuleShapes"] = {name: {"inFeatures": shape[0], "outFeatures": shape[1]} for name, shape in module_shapes(model).items()}
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def lora_input_arrays(adapter_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Build the lora.* inputs of the lora-inputs graph for a PEFT adapter: padded A, and B times the scale.

    Raises DataError when the adapter's rank exceeds the graph's maximum, when it targets a
    module the graph has no inputs for, or when a tensor's shape does not match the model.
    """
    import numpy as np
    from safetensors import safe_open

    settings = read_adapter_settings(adapter_dir)
    max_rank = int(manifest["maxRank"])
    rank = settings["rank"]
    if rank > max_rank:
        raise DataError(f"adapter rank {rank} exceeds the graph's maximum rank {max_rank}; export the lora-inputs graph with --max-rank {rank} or more")
    scale = settings["alpha"] / (math.sqrt(rank) if settings["useRslora"] else rank)
    shapes = manifest["loraModuleShapes"]
    arrays: dict[str, Any] = {}
    for index in range(manifest["numLayers"]):
        for module in manifest["loraModules"]:
            arrays[f"lora.{index}.{module}.A"] = np.zeros((max_rank, shapes[module]["inFeatures"]), dtype=np.float32)
            arrays[f"lora.{index}.{module}.B"] = np.zeros((shapes[module]["outFeatures"], max_rank), dtype=np.float32)

    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="np") as tensors:
        for key in tensors.keys():
            parts = key.split(".")
            if "lora_A" not in parts and "lora_B" not in parts:
                continue
            try:
                index = int(parts[parts.index("layers") + 1])
            except (ValueError, IndexError) as error:
                raise DataError(f"adapter tensor {key!r} is not inside a decoder layer; only decoder block modules can be LoRA inputs") from error
            module = next((part for part in parts if part in BLOCK_LINEAR_MODULES), None)
            if module is None or index >= manifest["numLayers"]:
                raise DataError(f"adapter tensor {key!r} targets a module the lora-inputs graph has no inputs for; export the merged variant")
            value = tensors.get_tensor(key).astype(np.float32)
            if "lora_A" in parts:
                expected = (rank, shapes[module]["inFeatures"])
                target, name = value, f"lora.{index}.{module}.A"
            else:
                expected = (shapes[module]["outFeatures"], rank)
                target, name = value * scale, f"lora.{index}.{module}.B"
            if tuple(value.shape) != expected:
                raise DataError(f"adapter tensor {key!r} has shape {list(value.shape)}, expected {list(expected)} for rank {rank}")
            if name.endswith(".A"):
                arrays[name][:rank] = target
            else:
                arrays[name][:, :rank] = target
    return arrays
