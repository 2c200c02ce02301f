"""Job spec validation: the contract's examples load, malformed specs raise SpecError."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from worker.errors import SpecError
from worker.spec import EvaluateJob, FinetuneJob, load_spec

FINETUNE_SPEC: dict[str, Any] = {
    "jobId": "0b6c",
    "kind": "finetune",
    "workDir": "/abs/work/dir",
    "baseModel": {"id": "smollm2-135m-instruct", "path": "/abs/cache/smollm2"},
    "finetune": {
        "datasetPath": "/abs/work/dir/data.jsonl",
        "outputDir": "/abs/work/dir/adapter",
        "hyperparameters": {
            "rank": 16, "alpha": 32, "dropout": 0.05, "targetModules": "all-linear",
            "learningRate": 0.0002, "epochs": 1, "maxSteps": None,
            "batchSize": 4, "gradientAccumulation": 1, "maxSeqLength": 512,
            "warmupRatio": 0.03, "seed": 42,
        },
    },
}

EVALUATE_SPEC: dict[str, Any] = {
    "jobId": "1a2b",
    "kind": "evaluate",
    "workDir": "/abs/work/dir",
    "baseModel": {"id": "smollm2-135m-instruct", "path": "/abs/cache/smollm2"},
    "evaluate": {
        "task": {"name": "pubmedqa", "path": "/abs/work/dir/task.jsonl", "limit": None},
        "subjects": [{"key": "base"}, {"key": "adapter-version:7", "adapterPath": "/abs/work/dir/adapter-7"}],
    },
}


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_contract_examples_load(tmp_path: Path) -> None:
    finetune = load_spec(write_spec(tmp_path, FINETUNE_SPEC))
    assert isinstance(finetune, FinetuneJob)
    assert finetune.finetune.hyperparameters.targetModules == "all-linear"
    assert finetune.finetune.hyperparameters.maxSteps is None

    evaluate = load_spec(write_spec(tmp_path, EVALUATE_SPEC))
    assert isinstance(evaluate, EvaluateJob)
    assert evaluate.evaluate.subjects[0].adapterPath is None
    assert evaluate.evaluate.subjects[1].adapterPath == "/abs/work/dir/adapter-7"


def test_target_module_list_accepted(tmp_path: Path) -> None:
    spec = copy.deepcopy(FINETUNE_SPEC)
    spec["finetune"]["hyperparameters"]["targetModules"] = ["q_proj", "v_proj"]
    job = load_spec(write_spec(tmp_path, spec))
    assert job.finetune.hyperparameters.targetModules == ["q_proj", "v_proj"]


def with_change(spec: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


HYPERPARAMETERS = ["finetune", "hyperparameters"]
INVALID_SPECS: dict[str, dict[str, Any]] = {
    "unknown kind": with_change(FINETUNE_SPEC, ["kind"], "distill"),
    "relative work dir": with_change(FINETUNE_SPEC, ["workDir"], "work"),
    "relative dataset path": with_change(FINETUNE_SPEC, ["finetune", "datasetPath"], "data.jsonl"),
    "relative adapter path": with_change(EVALUATE_SPEC, ["evaluate", "subjects"], [{"key": "a", "adapterPath": "adapter"}]),
    "misspelt hyperparameter": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "learningrate"], 0.1),
    "missing maxSteps": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "maxSteps"], KeyError),
    "zero rank": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "rank"], 0),
    "dropout of one": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "dropout"], 1.0),
    "unknown target keyword": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "targetModules"], "all"),
    "empty target list": with_change(FINETUNE_SPEC, [*HYPERPARAMETERS, "targetModules"], []),
    "missing finetune section": with_change(FINETUNE_SPEC, ["finetune"], KeyError),
    "zero limit": with_change(EVALUATE_SPEC, ["evaluate", "task", "limit"], 0),
    "no subjects": with_change(EVALUATE_SPEC, ["evaluate", "subjects"], []),
    "duplicate subject keys": with_change(EVALUATE_SPEC, ["evaluate", "subjects"], [{"key": "base"}, {"key": "base"}]),
}


@pytest.mark.parametrize("case", sorted(INVALID_SPECS))
def test_invalid_spec_raises(case: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid job spec"):
        load_spec(write_spec(tmp_path, INVALID_SPECS[case]))


def test_spec_not_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SpecError, match="invalid job spec"):
        load_spec(path)
