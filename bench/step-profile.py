"""Time per torch operator in one LoRA training step of the worker.

Builds the worker's LoRA model on SmolLM2-135M-Instruct and the first PubMedQA items of
bench/finetune-speed.ts, then times and profiles forward and backward passes of batches
of 4 examples (no optimizer step). `--stock` runs the path the worker replaced, with
batches padded to their longest row and PEFT's nn.Dropout. Without it the script runs
the worker's path: one flattened row, segment attention and SparseDropout.

Run from the repository root after bench/finetune-speed.ts has written its data:
  .venv/bin/python bench/step-profile.py [--stock] [--batches 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "gpu-runner"))

from worker.process import configure_offline_environment  # noqa: E402

configure_offline_environment()

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from worker.basemodel import load_base_model  # noqa: E402
from worker.batching import collate_rows, flatten_rows, single_rows  # noqa: E402
from worker.data import read_conversations, tokenize_dataset  # noqa: E402
from worker.finetune import build_lora_model, labelled_loss_sum, split_validation  # noqa: E402
from worker.kernels import use_segment_attention, use_sparse_dropout  # noqa: E402
from worker.spec import Hyperparameters  # noqa: E402

MODEL = ROOT / ".data" / "models" / "smollm2-135m-instruct"
DATA = ROOT / ".data" / "bench-finetune-speed" / "data.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock", action="store_true", help="padded batches and nn.Dropout, as before the worker's kernels")
    parser.add_argument("--batches", type=int, default=3, help="timed batches of 4 examples, after one warm-up batch")
    arguments = parser.parse_args()
    for path in (MODEL, DATA):
        if not path.exists():
            sys.exit(f"{path} is missing; run bash scripts/prepare-base-model.sh and npx tsx bench/finetune-speed.ts first")

    hyperparameters = Hyperparameters.model_validate(
        {
            "rank": 16, "alpha": 32, "dropout": 0.05, "targetModules": "all-linear", "learningRate": 2e-4, "epochs": 1,
            "maxSteps": None, "batchSize": 4, "gradientAccumulation": 1, "maxSeqLength": 512, "warmupRatio": 0.03, "seed": 42,
            "validationFraction": 0.125,
        }
    )
    torch.manual_seed(hyperparameters.seed)
    tokenizer, base = load_base_model(MODEL, torch.device("cpu"), torch.float32)
    tokenized = tokenize_dataset(tokenizer, read_conversations(DATA), hyperparameters.maxSeqLength)
    training, _ = split_validation(tokenized.examples, hyperparameters.validationFraction, hyperparameters.seed)
    model = build_lora_model(base, hyperparameters, "smollm2-135m-instruct", total_steps=10)
    if not arguments.stock:
        use_segment_attention(model.get_base_model())
        use_sparse_dropout(model)
    model.train()
    rows = single_rows(training)
    batches = [rows[offset : offset + 4] for offset in range(0, 4 * (arguments.batches + 1), 4)]
    if len(batches[-1]) < 4:
        sys.exit(f"{len(rows)} training rows are too few for {arguments.batches} timed batches of 4")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def step(batch_rows: list) -> tuple[int, int]:
        batch = collate_rows(batch_rows, pad, packed=False) if arguments.stock else flatten_rows(batch_rows)
        labelled_loss_sum(model, batch).div(1000).backward()
        model.zero_grad(set_to_none=True)
        return int(batch["tokens"]), batch["input_ids"].numel()

    step(batches[0])
    real = computed = 0
    started = time.monotonic()
    for batch_rows in batches[1:]:
        tokens, positions = step(batch_rows)
        real += tokens
        computed += positions
    seconds = time.monotonic() - started
    print(f"{'stock' if arguments.stock else 'worker'}: {arguments.batches} batches, {real} tokens "
          f"({computed} positions computed), {seconds:.2f} s, {real / seconds:.1f} tokens/s")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step(batches[1])
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
