"""The `finetune` job: LoRA training with a plain PyTorch loop, then saving the adapter."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .basemodel import load_base_model
from .data import IGNORE_INDEX, TokenizedExample, collate, read_conversations, tokenize_dataset
from .distributed import ProcessGroup, join
from .errors import JobCancelled, SpecError
from .events import ArtifactEvent, CheckpointEvent, EventWriter, FinetuneSummary, FinishedEvent, ProgressEvent
from .process import CancellationFlag
from .runtime import DeviceChoice, peak_memory_bytes
from .spec import FinetuneJob, Hyperparameters

# Gradient norm clipping threshold, the transformers Trainer default (max_grad_norm=1.0).
MAX_GRAD_NORM = 1.0
# trainLoss in the summary is the mean loss of this many last steps (fewer if the run is shorter).
TRAIN_LOSS_WINDOW = 10
CHECKPOINT_FOLDER = "checkpoint"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainingPlan:
    """Step counts derived from the data set size and the hyperparameters."""

    examples: int
    batch_size: int
    gradient_accumulation: int
    epochs: int
    max_steps: int | None
    micro_batches_per_epoch: int = field(init=False)
    steps_per_epoch: int = field(init=False)
    total_steps: int = field(init=False)
    epochs_to_run: int = field(init=False)

    def __post_init__(self) -> None:
        self.micro_batches_per_epoch = math.ceil(self.examples / self.batch_size)
        # The last optimizer step of an epoch may accumulate fewer micro-batches.
        self.steps_per_epoch = math.ceil(self.micro_batches_per_epoch / self.gradient_accumulation)
        full_steps = self.epochs * self.steps_per_epoch
        # maxSteps caps the step count; it never extends training beyond `epochs`.
        self.total_steps = full_steps if self.max_steps is None else min(self.max_steps, full_steps)
        self.epochs_to_run = math.ceil(self.total_steps / self.steps_per_epoch)


def build_lora_model(model: Any, hyperparameters: Hyperparameters, base_model_id: str) -> Any:
    """Wrap the model with a fresh LoRA adapter; only the adapter's parameters are trainable."""
    from peft import LoraConfig, get_peft_model

    target_modules = hyperparameters.targetModules
    if isinstance(target_modules, list):
        leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        full_names = {name for name, _ in model.named_modules()}
        unknown = [name for name in target_modules if name not in leaf_names and name not in full_names]
        if unknown:
            raise SpecError(
                f"targetModules {unknown} match no module of the base model; use \"all-linear\" or names "
                f"such as {sorted(leaf_names & {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'})}"
            )
    config = LoraConfig(
        r=hyperparameters.rank,
        lora_alpha=hyperparameters.alpha,
        lora_dropout=hyperparameters.dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    # PEFT records the local folder path, which means nothing once the adapter is published.
    peft_model.peft_config["default"].base_model_name_or_path = base_model_id
    return peft_model


def masked_token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Return the summed cross-entropy of the next-token predictions at labelled positions.

    Position t's logits predict labels[t + 1]. Only labelled logits are upcast to
    float32, which keeps the memory for bfloat16 logits of long prompts low.
    """
    shifted_logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    selected = targets != IGNORE_INDEX
    return F.cross_entropy(shifted_logits[selected].float(), targets[selected], reduction="sum")


def _set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass
class TrainingState:
    """Counters of a run, saved in checkpoints so a resumed run reports the whole training."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    train_tokens: int = 0
    training_seconds: float = 0.0


OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


def _save_checkpoint(
    model: Any, optimizer: torch.optim.Optimizer, work_dir: Path, state: TrainingState, plan: TrainingPlan,
    hyperparameters: Hyperparameters,
) -> Path:
    """Save the adapter, the optimizer state and the run's counters under workDir/checkpoint.

    Everything is safetensors or JSON, so resuming never unpickles a file. The folder is
    written beside the old one and swapped in, so a crash mid-save keeps the previous checkpoint.
    """
    from safetensors.torch import save_file

    path = work_dir / CHECKPOINT_FOLDER
    staging = work_dir / f"{CHECKPOINT_FOLDER}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(str(staging), save_embedding_layers=False)

    optimizer_state = optimizer.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    save_file(tensors, str(staging / OPTIMIZER_FILE))

    trainer_state = {
        "step": state.step,
        "totalSteps": plan.total_steps,
        "epoch": state.step / plan.steps_per_epoch,
        "lastLoss": state.losses[-1] if state.losses else None,
        "losses": state.losses,
        "trainTokens": state.train_tokens,
        "trainingSeconds": state.training_seconds,
        "paramGroups": optimizer_state["param_groups"],
        "pythonRandom": list(random.getstate()[1]),
        "hyperparameters": hyperparameters.model_dump(),
    }
    (staging / STATE_FILE).write_text(json.dumps(trainer_state) + "\n", encoding="utf-8")
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)
    return path.resolve()


def _load_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer, hyperparameters: Hyperparameters) -> TrainingState:
    """Restore the adapter weights, optimizer state and counters saved by _save_checkpoint."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise SpecError(f"checkpoint {str(path)!r} has no {STATE_FILE}; it was not written by this worker")
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    if saved.get("hyperparameters") != hyperparameters.model_dump():
        raise SpecError("the checkpoint was trained with other hyperparameters than this job's; it cannot be resumed")

    adapter = load_file(str(path / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, adapter)
    if getattr(result, "unexpected_keys", None):
        raise SpecError(f"checkpoint adapter has tensors this model lacks: {result.unexpected_keys[:5]}")

    tensors = load_file(str(path / OPTIMIZER_FILE))
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": saved["paramGroups"]}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    torch.set_rng_state(tensors["rng.torch"])
    random.setstate((3, tuple(saved["pythonRandom"]), None))
    return TrainingState(
        step=int(saved["step"]),
        losses=[float(loss) for loss in saved["losses"]],
        train_tokens=int(saved["trainTokens"]),
        training_seconds=float(saved["trainingSeconds"]),
    )


def write_model_card(
    output_dir: Path, base_model_id: str, job_id: str, hyperparameters: Hyperparameters, summary: FinetuneSummary
) -> None:
    """Write README.md with Hugging Face model card front matter, replacing the one PEFT writes."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in hyperparameters.model_dump().items())
    text = f"""---
base_model: {json.dumps(base_model_id)}
library_name: peft
tags:
- lora
- peft
- adapter-marketplace
---

# LoRA adapter for {base_model_id}

Trained by job `{job_id}` of the adapter marketplace. Load it with
`PeftModel.from_pretrained(base_model, "<this folder>")`.

## Hyperparameters

| name | value |
| --- | --- |
{rows}

## Training

| metric | value |
| --- | --- |
| examples | {summary.examples} |
| optimizer steps | {summary.steps} |
| epochs | {summary.epochs:.3f} |
| final loss | {summary.finalLoss:.4f} |
| mean loss of the last {TRAIN_LOSS_WINDOW} steps | {summary.trainLoss:.4f} |
| trained tokens | {summary.trainTokens} |
| trainable parameters | {summary.trainableParameters} |
"""
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def run_finetune(job: FinetuneJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag) -> None:
    """Train a LoRA adapter; under torchrun, as one of several data-parallel processes."""
    processes, device_choice = join(device_choice)
    try:
        _run_finetune(job, device_choice, events, cancel, processes)
    finally:
        processes.close()


def _run_finetune(job: FinetuneJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag, processes: ProcessGroup) -> None:
    from transformers import get_linear_schedule_with_warmup

    section = job.finetune
    hyperparameters = section.hyperparameters
    device = device_choice.device
    work_dir = Path(job.workDir)
    output_dir = Path(section.outputDir)
    job_start = time.monotonic()
    _set_seed(hyperparameters.seed)

    tokenizer, base_model = load_base_model(Path(job.baseModel.path), device, device_choice.dtype)
    conversations = read_conversations(Path(section.datasetPath))
    examples, dropped_lines = tokenize_dataset(tokenizer, conversations, hyperparameters.maxSeqLength)
    if dropped_lines:
        events.log(
            "warning",
            f"skipped {len(dropped_lines)} examples whose assistant tokens all lie beyond "
            f"maxSeqLength={hyperparameters.maxSeqLength} (lines {dropped_lines[:20]})",
        )
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    model = build_lora_model(base_model, hyperparameters, job.baseModel.id)
    trainable_parameters, total_parameters = model.get_nb_trainable_parameters()
    plan = TrainingPlan(
        examples=len(examples),
        batch_size=hyperparameters.batchSize,
        gradient_accumulation=hyperparameters.gradientAccumulation,
        epochs=hyperparameters.epochs,
        max_steps=hyperparameters.maxSteps,
    )
    optimizer = torch.optim.AdamW(
        [parameter for parameter in model.parameters() if parameter.requires_grad], lr=hyperparameters.learningRate
    )
    warmup_steps = math.ceil(hyperparameters.warmupRatio * plan.total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, plan.total_steps)
    events.log(
        "info",
        f"training {trainable_parameters} of {total_parameters} parameters on {len(examples)} examples: "
        f"{plan.total_steps} steps, {plan.steps_per_epoch} per epoch, {warmup_steps} warmup",
    )
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if processes.distributed:
        events.log("info", f"data parallel over {processes.world_size} processes; each trains on its share of every step's examples")

    state = TrainingState()
    if section.resumeFrom is not None:
        state = _load_checkpoint(Path(section.resumeFrom), model, optimizer, hyperparameters)
        # The schedule is a pure function of the step, so replaying it restores the learning rate.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(state.step):
                scheduler.step()
        events.log("info", f"resumed from the checkpoint after step {state.step} of {plan.total_steps}")

    shuffle_generator = torch.Generator().manual_seed(hyperparameters.seed)
    last_checkpoint = time.monotonic()
    model.train()

    def checkpoint_due() -> bool:
        if state.step >= plan.total_steps:
            return False
        if section.checkpointEverySteps is not None and state.step % section.checkpointEverySteps == 0:
            return True
        return section.checkpointEverySeconds is not None and time.monotonic() - last_checkpoint >= section.checkpointEverySeconds

    for epoch in range(plan.epochs_to_run):
        # Every epoch draws its order from the seeded generator, so a resumed run replays the same order.
        order = torch.randperm(len(examples), generator=shuffle_generator).tolist()
        micro_batches = [
            [examples[index] for index in order[offset : offset + plan.batch_size]]
            for offset in range(0, len(order), plan.batch_size)
        ]
        for group_start in range(0, len(micro_batches), plan.gradient_accumulation):
            if epoch * plan.steps_per_epoch + group_start // plan.gradient_accumulation < state.step:
                continue  # done before the checkpoint this run resumed from
            if state.step >= plan.total_steps:
                break
            if processes.any(cancel.requested, device):
                _stop_for_cancellation(model, optimizer, work_dir, state, plan, hyperparameters, events, cancel, processes)

            group = micro_batches[group_start : group_start + plan.gradient_accumulation]
            step_start = time.monotonic()
            step_examples = [example for batch in group for example in batch]
            labelled_tokens = sum(example.label_count for example in step_examples)
            mine = processes.share(step_examples)
            local_batches = [mine[offset : offset + plan.batch_size] for offset in range(0, len(mine), plan.batch_size)]
            local_loss, local_tokens = _train_step(model, local_batches, labelled_tokens, pad_token_id, device)
            processes.sum_gradients(trainable)
            loss_sum, token_sum = processes.sum_values([local_loss, local_tokens], device)
            loss, tokens = loss_sum / labelled_tokens, int(token_sum)
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_seconds = time.monotonic() - step_start

            state.step += 1
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss} at step {state.step}; lower learningRate (now {hyperparameters.learningRate})"
                )
            state.losses.append(loss)
            state.train_tokens += tokens
            state.training_seconds += step_seconds
            events.emit(
                ProgressEvent(
                    step=state.step,
                    totalSteps=plan.total_steps,
                    epoch=state.step / plan.steps_per_epoch,
                    loss=loss,
                    learningRate=learning_rate,
                    tokensPerSecond=tokens / step_seconds if step_seconds > 0 else 0.0,
                )
            )
            if processes.is_main and checkpoint_due() and not cancel.requested:
                path = _save_checkpoint(model, optimizer, work_dir, state, plan, hyperparameters)
                events.emit(CheckpointEvent(step=state.step, path=str(path)))
                last_checkpoint = time.monotonic()
        if state.step >= plan.total_steps:
            break

    if processes.any(cancel.requested, device):
        # SIGTERM arrived during the last step. The contract still requires a checkpoint then.
        _stop_for_cancellation(model, optimizer, work_dir, state, plan, hyperparameters, events, cancel, processes)
    if not processes.is_main:
        return

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir), save_embedding_layers=False)
    losses = state.losses
    summary = FinetuneSummary(
        steps=state.step,
        epochs=state.step / plan.steps_per_epoch,
        trainLoss=sum(losses[-TRAIN_LOSS_WINDOW:]) / len(losses[-TRAIN_LOSS_WINDOW:]),
        finalLoss=losses[-1],
        wallSeconds=time.monotonic() - job_start,
        tokensPerSecond=state.train_tokens / state.training_seconds if state.training_seconds > 0 else 0.0,
        peakMemoryBytes=peak_memory_bytes(device),
        trainableParameters=trainable_parameters,
        totalParameters=total_parameters,
        examples=len(examples),
        trainTokens=state.train_tokens,
        processes=processes.world_size,
    )
    write_model_card(output_dir, job.baseModel.id, job.jobId, hyperparameters, summary)
    events.emit(ArtifactEvent(path=str(output_dir.resolve()), role="adapter"))
    events.emit(FinishedEvent(summary=summary))


def _train_step(
    model: Any, group: list[list[TokenizedExample]], labelled_tokens: int, pad_token_id: int, device: torch.device
) -> tuple[float, int]:
    """Run forward and backward over this process's micro-batches of one optimizer step.

    The loss is the mean over every labelled token of the step (`labelled_tokens`,
    counted over all processes), not the mean of per-batch means, so micro-batches with
    more assistant tokens weigh more, and gradient accumulation or a split across
    processes gives the same gradient as one large batch.
    Returns the sum of token losses and the count of non-padding tokens of these batches.
    """
    loss_total = 0.0
    tokens = 0
    for batch in group:
        tensors = {name: tensor.to(device) for name, tensor in collate(batch, pad_token_id).items()}
        output = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"], use_cache=False)
        loss_sum = masked_token_loss_sum(output.logits, tensors["labels"])
        (loss_sum / labelled_tokens).backward()
        loss_total += loss_sum.item()
        tokens += int(tensors["attention_mask"].sum().item())
    return loss_total, tokens


def _stop_for_cancellation(
    model: Any,
    optimizer: torch.optim.Optimizer,
    work_dir: Path,
    state: TrainingState,
    plan: TrainingPlan,
    hyperparameters: Hyperparameters,
    events: EventWriter,
    cancel: CancellationFlag,
    processes: ProcessGroup,
) -> None:
    """Save a checkpoint (when a step has run; rank 0 only) and raise JobCancelled."""
    step = state.step
    signal_name = cancel.signal_name or "SIGTERM"
    if not processes.is_main:
        raise JobCancelled(f"{signal_name} received; stopped after step {step}")
    if step > 0:
        path = _save_checkpoint(model, optimizer, work_dir, state, plan, hyperparameters)
        events.emit(CheckpointEvent(step=step, path=str(path)))
        events.emit(ArtifactEvent(path=str(path), role="checkpoint"))
        raise JobCancelled(f"{signal_name} received; stopped after step {step} of {plan.total_steps} and saved a checkpoint")
    raise JobCancelled(f"{signal_name} received before the first training step; no checkpoint saved")
