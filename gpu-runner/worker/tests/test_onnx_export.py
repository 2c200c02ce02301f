"""ONNX export: graphs match transformers' logits, with and without the key/value cache and LoRA inputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from worker.onnx_export import MANIFEST_NAME, export_bundle, lora_input_arrays, sha256_file
from worker.tests.helpers import GPU_RUNNER_DIR, WORKER_TIMEOUT_SECONDS, worker_command, worker_environment

# Float32 graphs against float32 PyTorch on the CPU: differences come only from the order
# of operations, so they stay far below this bound on the tiny model's logits (about 1e-6).
FP32_TOLERANCE = 1e-4
ADAPTER_RANK = 4
MAX_RANK = 8


@pytest.fixture(scope="module")
def random_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 rsLoRA adapter with random non-zero A and B on attention and MLP modules, saved as safetensors."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32, local_files_only=True)
    config = LoraConfig(
        r=ADAPTER_RANK, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    get_peft_model(model, config).save_pretrained(str(out), safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def merged_bundle(tiny_base: Path, random_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("merged")
    export_bundle(tiny_base, out, adapter_dir=random_adapter, lora_inputs=False)
    return out


@pytest.fixture(scope="module")
def lora_bundle(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lora")
    completed = subprocess.run(
        worker_command("export-onnx", "--model", str(tiny_base), "--out", str(out), "--lora-inputs", "--max-rank", str(MAX_RANK), "--no-merged"),
        cwd=GPU_RUNNER_DIR, env=worker_environment(), capture_output=True, text=True, timeout=WORKER_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    return out


def _session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _empty_cache(manifest: dict[str, Any], batch: int) -> dict[str, np.ndarray]:
    shape = (batch, manifest["numKeyValueHeads"], 0, manifest["headDim"])
    cache = {}
    for index in range(manifest["numLayers"]):
        cache[f"past_key_values.{index}.key"] = np.zeros(shape, dtype=np.float32)
        cache[f"past_key_values.{index}.value"] = np.zeros(shape, dtype=np.float32)
    return cache


def _run(session: Any, ids: np.ndarray, past: dict[str, np.ndarray], past_length: int, extra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run one step and return the logits and the cache to pass to the next step."""
    batch, seq = ids.shape
    feeds = {
        "input_ids": ids.astype(np.int64),
        "attention_mask": np.ones((batch, past_length + seq), dtype=np.int64),
        "position_ids": np.arange(past_length, past_length + seq, dtype=np.int64)[None].repeat(batch, 0),
        **past,
        **(extra or {}),
    }
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feeds)))
    cache = {name.replace("present.", "past_key_values."): value for name, value in outputs.items() if name.startswith("present.")}
    return outputs["logits"], cache


def _torch_logits(tiny_base: Path, adapter: Path | None, ids: np.ndarray) -> np.ndarray:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32, local_files_only=True)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids)).logits.numpy()


def _prompt(tiny_tokenizer: Any) -> np.ndarray:
    ids = tiny_tokenizer("Is aspirin an anti-inflammatory drug? Answer yes or no.")["input_ids"]
    return np.array([ids], dtype=np.int64)


def test_merged_export_matches_pytorch(merged_bundle: Path, tiny_base: Path, random_adapter: Path, tiny_tokenizer: Any) -> None:
    manifest = json.loads((merged_bundle / MANIFEST_NAME).read_text())
    ids = _prompt(tiny_tokenizer)
    expected = _torch_logits(tiny_base, random_adapter, ids)

    logits, _ = _run(_session(merged_bundle / "model.onnx"), ids, _empty_cache(manifest, 1), 0)

    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() < FP32_TOLERANCE


def test_merged_export_kv_cache_step(merged_bundle: Path, tiny_base: Path, random_adapter: Path, tiny_tokenizer: Any) -> None:
    """Prefill all but the last three tokens, then feed them one at a time through the cache."""
    manifest = json.loads((merged_bundle / MANIFEST_NAME).read_text())
    ids = _prompt(tiny_tokenizer)
    expected = _torch_logits(tiny_base, random_adapter, ids)
    session = _session(merged_bundle / "model.onnx")
    prefix = ids.shape[1] - 3

    logits, cache = _run(session, ids[:, :prefix], _empty_cache(manifest, 1), 0)
    assert np.abs(logits - expected[:, :prefix]).max() < FP32_TOLERANCE
    for position in range(prefix, ids.shape[1]):
        logits, cache = _run(session, ids[:, position : position + 1], cache, position)
        assert cache["past_key_values.0.key"].shape[2] == position + 1
        assert np.abs(logits[:, 0] - expected[:, position]).max() < FP32_TOLERANCE


def test_int8_export_smaller_and_close(merged_bundle: Path, tiny_tokenizer: Any) -> None:
    manifest = json.loads((merged_bundle / MANIFEST_NAME).read_text())
    ids = _prompt(tiny_tokenizer)
    fp32, _ = _run(_session(merged_bundle / "model.onnx"), ids, _empty_cache(manifest, 1), 0)
    int8, _ = _run(_session(merged_bundle / "model.int8.onnx"), ids, _empty_cache(manifest, 1), 0)

    assert (merged_bundle / "model.int8.onnx").stat().st_size < (merged_bundle / "model.onnx").stat().st_size / 2
    assert int8.shape == fp32.shape
    # Quantization error is real but bounded: the logits stay correlated with fp32's.
    assert np.corrcoef(int8.ravel(), fp32.ravel())[0, 1] > 0.9


def test_lora_inputs_match_merged_export(lora_bundle: Path, merged_bundle: Path, random_adapter: Path, tiny_tokenizer: Any) -> None:
    manifest = json.loads((lora_bundle / MANIFEST_NAME).read_text())
    assert manifest["maxRank"] == MAX_RANK
    ids = _prompt(tiny_tokenizer)
    lora = lora_input_arrays(random_adapter, manifest)
    assert np.count_nonzero(lora["lora.0.q_proj.A"][ADAPTER_RANK:]) == 0

    merged, _ = _run(_session(merged_bundle / "model.onnx"), ids, _empty_cache(manifest, 1), 0)
    through_inputs, cache = _run(_session(lora_bundle / "model.lora.onnx"), ids[:, :-1], _empty_cache(manifest, 1), 0, lora)
    last, _ = _run(_session(lora_bundle / "model.lora.onnx"), ids[:, -1:], cache, ids.shape[1] - 1, lora)

    assert np.abs(through_inputs - merged[:, :-1]).max() < FP32_TOLERANCE
    assert np.abs(last[:, 0] - merged[:, -1]).max() < FP32_TOLERANCE


def test_lora_inputs_take_unpadded_rank(lora_bundle: Path, random_adapter: Path, tiny_tokenizer: Any) -> None:
    manifest = json.loads((lora_bundle / MANIFEST_NAME).read_text())
    ids = _prompt(tiny_tokenizer)
    padded = lora_input_arrays(random_adapter, manifest)
    # Each factor at the adapter's own rank, and untargeted modules as rank-1 zeros.
    unpadded = {}
    for name, array in padded.items():
        rank = ADAPTER_RANK if np.count_nonzero(array) else 1
        unpadded[name] = np.ascontiguousarray(array[:rank] if name.endswith(".A") else array[:, :rank])
    session = _session(lora_bundle / "model.lora.onnx")

    expected, _ = _run(session, ids, _empty_cache(manifest, 1), 0, padded)
    logits, _ = _run(session, ids, _empty_cache(manifest, 1), 0, unpadded)

    assert unpadded["lora.0.q_proj.A"].shape[0] == ADAPTER_RANK
    assert np.abs(logits - expected).max() < FP32_TOLERANCE


def test_lora_inputs_zero_is_base_model(lora_bundle: Path, tiny_base: Path, tiny_tokenizer: Any) -> None:
    manifest = json.loads((lora_bundle / MANIFEST_NAME).read_text())
    ids = _prompt(tiny_tokenizer)
    zeros = {
        # The rank dimension is symbolic; rank 1 zeros add nothing, like any other rank.
        entry["name"]: np.zeros([dim if isinstance(dim, int) else 1 for dim in entry["shape"]], dtype=np.float32)
        for variant in manifest["variants"] for entry in variant["inputs"] if entry["name"].startswith("lora.")
    }

    logits, _ = _run(_session(lora_bundle / "model.lora.onnx"), ids, _empty_cache(manifest, 1), 0, zeros)

    assert np.abs(logits - _torch_logits(tiny_base, None, ids)).max() < FP32_TOLERANCE


def test_manifest_lists_files_with_checksums(lora_bundle: Path) -> None:
    manifest = json.loads((lora_bundle / MANIFEST_NAME).read_text())
    listed = {entry["path"]: entry for entry in manifest["files"]}

    assert {"model.lora.onnx", "tokenizer.json", "tokenizer_config.json"} <= set(listed)
    for path, entry in listed.items():
        assert entry["size"] == (lora_bundle / path).stat().st_size
        assert entry["sha256"] == sha256_file(lora_bundle / path)
    assert manifest["loraModules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert [variant["name"] for variant in manifest["variants"]] == ["lora-inputs"]
    names = [entry["name"] for entry in manifest["variants"][0]["inputs"]]
    assert names[:4] == ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key"]
    assert "lora.1.down_proj.B" in names


def test_lora_inputs_reject_rank_above_maximum(lora_bundle: Path, random_adapter: Path) -> None:
    from worker.errors import DataError

    manifest = dict(json.loads((lora_bundle / MANIFEST_NAME).read_text()), maxRank=ADAPTER_RANK - 1)

    with pytest.raises(DataError, match=f"adapter rank {ADAPTER_RANK} exceeds the graph's maximum rank {ADAPTER_RANK - 1}"):
        lora_input_arrays(random_adapter, manifest)


def test_export_job_writes_bundle_and_reference(tiny_base: Path, random_adapter: Path, tmp_path: Path) -> None:
    from worker.tests.helpers import run_worker_job, write_jsonl

    task = write_jsonl(tmp_path / "task.jsonl", [
        {"id": "a", "prompt": "Is water wet?", "choices": ["yes", "no", "maybe"], "gold": 0},
        {"id": "b", "prompt": "Is fire cold?", "choices": ["yes", "no"], "gold": 1},
    ])
    spec = {
        "jobId": "export-test", "kind": "export", "workDir": str(tmp_path),
        "baseModel": {"id": "tiny", "path": str(tiny_base)},
        "export": {
            "outputDir": str(tmp_path / "edge"), "referenceDir": str(tmp_path / "reference"), "adapterPath": str(random_adapter),
            "task": {"name": "tiny-task", "path": str(task), "limit": 8}, "generateTokens": 2,
        },
    }

    run = run_worker_job(spec, tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    assert run.types()[0] == "started"
    summary = run.of_type("finished")[0].summary
    assert summary.manifest["adapter"]["rank"] == ADAPTER_RANK
    assert [variant["name"] for variant in summary.manifest["variants"]] == ["merged", "merged-int8"]
    assert summary.referencePrompts > 0
    assert summary.referenceTaskItems == 2
    reference = json.loads((tmp_path / "reference" / "reference.json").read_text())
    logits = np.fromfile(tmp_path / "reference" / reference["logitsFile"], dtype="<f4")
    assert logits.size == len(reference["prompts"]) * reference["vocabSize"]
    assert [len(item["choices"]) for item in reference["task"]["items"]] == [3, 2]
    assert (tmp_path / "edge" / MANIFEST_NAME).is_file()


def test_export_rejects_pickled_adapter(tmp_path: Path) -> None:
    from worker.errors import DataError
    from worker.onnx_export import read_adapter_settings

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (tmp_path / "adapter_model.bin").write_bytes(b"not loaded")

    with pytest.raises(DataError, match=r"missing \['adapter_model.safetensors'\].*pickled .bin weights are never loaded"):
        read_adapter_settings(tmp_path)


def test_export_rejects_unsupported_architecture(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from worker.errors import SpecError
    from worker.onnx_export import check_supported

    config = SimpleNamespace(model_type="gpt2", hidden_act="gelu_new")

    with pytest.raises(SpecError, match=r"unsupported model_type 'gpt2' \(supported: \['llama'\]\), hidden_act 'gelu_new'"):
        check_supported(config, tmp_path)
