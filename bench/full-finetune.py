"""Full fine-tune of a base model on a worker fine-tune spec: the reference for bench/quality.ts.

The worker trains LoRA adapters only. This script trains every parameter of the same model
on exactly the examples the worker trains on, with the worker's own functions for each step.
It shares the tokenization (chat template, assistant-only labels, left truncation), the
validation split and the row order (the same seeded permutation per epoch). The batch size,
the loss (mean over the step's labelled tokens), AdamW, warm-up, schedule and gradient
clipping are the worker's too. Only the learning rate differs, because full
fine-tuning needs a far smaller one than LoRA; pass it with --learning-rate.

The result is a base model folder (config.json, model.safetensors, tokenizer files) that
an evaluate job scores like any other base model.

Prints one JSON line: trainableParameters, steps, trainTokens, trainSeconds, wallSeconds,
finalLoss, trainLoss (mean of the last 10 step losses), peakMemoryBytes (max RSS).

Run from the repository root:
  .venv/bin/python bench/full-finetune.py --spec SPEC.json --learning-rate 2e-5 --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu-runner"))

from worker.process import configure_offline_environment  # noqa: E402

configure_offline_environment()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from worker.basemodel import load_base_model  # noqa: E402
from worker.batching import collate_rows, single_rows  # noqa: E402
from worker.data import IGNORE_INDEX, read_conversations, tokenize_dataset  # noqa: E402
from worker.finetune import (  # noqa: E402
    MAX_GRAD_NORM,
    TrainingPlan,
    _make_optimizer,
    _make_scheduler,
    _set_seed,
    split_validation,
)
from worker.spec import load_spec  # noqa: E402

TRAIN_LOSS_WINDOW = 10
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


def labelled_loss_sum(model, batch: dict) -> torch.Tensor:
    """Return the summed next-token loss at labelled positions, as the worker's labelled_loss_sum does without PEFT."""
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"], use_cache=False
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    selected = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][selected]).float()
    return F.cross_entropy(logits, targets[selected], reduction="sum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="worker fine-tune spec whose base model, data and hyperparameters to use")
    parser.add_argument("--learning-rate", type=float, required=True, help="peak learning rate of the full fine-tune (the spec's LoRA rate is ignored)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the fine-tuned model (safetensors) and the tokenizer files")
    arguments = parser.parse_args()

    job_start = time.monotonic()
    job = load_spec(arguments.spec)
    options = job.finetune.hyperparameters
    if options.packing or options.gradientAccumulation != 1:
        raise SystemExit("full-finetune.py supports packing=false and gradientAccumulation=1 only; change the spec")
    _set_seed(options.seed)
    device = torch.device("cpu")
    base_path = Path(job.baseModel.path)
    tokenizer, model = load_base_model(base_path, device, torch.float32)

    tokenized = tokenize_dataset(tokenizer, read_conversations(Path(job.finetune.datasetPath)), options.maxSeqLength)
    training, _validation = split_validation(tokenized.examples, options.validationFraction, options.seed)
    rows = single_rows(training)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plan = TrainingPlan(len(rows), options.batchSize, 1, options.epochs, options.maxSteps)

    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    # Tied input and output embeddings are one tensor, so count unique storage.
    trainable_parameters = sum(parameter.numel() for parameter in {id(p): p for p in parameters}.values())
    optimizer = _make_optimizer(parameters, arguments.learning_rate)
    scheduler = _make_scheduler(optimizer, options.lrScheduler, math.ceil(options.warmupRatio * plan.total_steps), plan.total_steps)
    shuffle_generator = torch.Generator().manual_seed(options.seed)
    model.train()

    losses: list[float] = []
    train_tokens = 0
    train_seconds = 0.0
    step = 0
    for _epoch in range(plan.epochs_to_run):
        # The worker draws each epoch's order from a generator seeded the same way.
        order = torch.randperm(len(rows), generator=shuffle_generator).tolist()
        for offset in range(0, len(order), plan.batch_size):
            if step >= plan.total_steps:
                break
            step_start = time.monotonic()
            batch_rows = [rows[index] for index in order[offset : offset + plan.batch_size]]
            labelled_tokens = sum(row.label_count for row in batch_rows)
            batch = collate_rows(batch_rows, pad_token_id, packed=False)
            loss_sum = labelled_loss_sum(model, batch)
            (loss_sum / labelled_tokens).backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            train_seconds += time.monotonic() - step_start
            train_tokens += int(batch["tokens"].item())
            step += 1
            losses.append(loss_sum.item() / labelled_tokens)
            print(json.dumps({"type": "progress", "step": step, "totalSteps": plan.total_steps, "loss": losses[-1]}), file=sys.stderr, flush=True)

    arguments.out.mkdir(parents=True, exist_ok=True)
    # transformers 5 always writes safetensors.
    model.save_pretrained(str(arguments.out))
    # The evaluate job renders prompts with the base model's chat template, so copy its tokenizer files unchanged.
    for name in TOKENIZER_FILES:
        if (base_path / name).is_file():
            shutil.copy2(base_path / name, arguments.out / name)

    print(
        json.dumps(
            {
                "trainableParameters": trainable_parameters,
                "learningRate": arguments.learning_rate,
                "examples": len(training),
                "steps": step,
                "trainTokens": train_tokens,
                "trainSeconds": train_seconds,
                "tokensPerSecond": train_tokens / train_seconds if train_seconds > 0 else 0.0,
                "finalLoss": losses[-1],
                "trainLoss": sum(losses[-TRAIN_LOSS_WINDOW:]) / len(losses[-TRAIN_LOSS_WINDOW:]),
                "truncatedExamples": len(tokenized.truncated_lines),
                "droppedExamples": len(tokenized.dropped_lines),
                "wallSeconds": time.monotonic() - job_start,
                "peakMemoryBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
