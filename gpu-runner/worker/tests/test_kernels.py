"""Flattened rows with segment attention, and sparse dropout, against the stock paths they replace."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from worker.batching import collate_rows, flatten_rows, pack_rows, single_rows
from worker.data import IGNORE_INDEX, Conversation, tokenize_dataset
from worker.finetune import build_lora_model, labelled_loss_sum
from worker.kernels import SEGMENT_ATTENTION, SparseDropout, dropped_positions, use_segment_attention, use_sparse_dropout
from worker.spec import Hyperparameters

CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Double 3."}, {"role": "assistant", "content": "6"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, like the sea on a clear day."}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
    [{"role": "user", "content": "Spell cat backwards."}, {"role": "assistant", "content": "tac"}],
]


def examples(tokenizer: Any) -> list[Any]:
    conversations = [Conversation(index + 1, messages) for index, messages in enumerate(CONVERSATIONS)]
    return tokenize_dataset(tokenizer, conversations, max_seq_length=512).examples


def load_model(tiny_base: Path, attention: str = "sdpa") -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(tiny_base), dtype=torch.float32, local_files_only=True, attn_implementation=attention
    )


def lora_model(tiny_base: Path, dropout: float) -> Any:
    hyperparameters = Hyperparameters.model_validate(
        {
            "rank": 4, "alpha": 8, "dropout": dropout, "targetModules": "all-linear", "learningRate": 1e-3, "epochs": 1,
            "maxSteps": None, "batchSize": 4, "gradientAccumulation": 1, "maxSeqLength": 512, "warmupRatio": 0.0, "seed": 1,
        }
    )
    torch.manual_seed(1)
    model = build_lora_model(load_model(tiny_base), hyperparameters, "tiny", total_steps=10)
    # PEFT starts lora_B at zero; random values make the adapter's gradients and outputs matter.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    return model


def test_flatten_rows_layout(tiny_tokenizer: Any) -> None:
    items = examples(tiny_tokenizer)
    packed = pack_rows(items[:3], max_seq_length=512)
    rows = packed + single_rows(items[3:])

    batch = flatten_rows(rows)

    lengths = [len(row.input_ids) for row in rows]
    order = sorted(items[:3], key=lambda example: -len(example.input_ids)) + items[3:]
    expected_bounds = []
    offset = 0
    for example in order:
        expected_bounds.append((offset, offset + len(example.input_ids)))
        offset += len(example.input_ids)
    assert batch["segment_bounds"] == expected_bounds
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["input_ids"][0].tolist() == [token for example in order for token in example.input_ids]
    assert batch["position_ids"][0].tolist() == [p for example in order for p in range(len(example.input_ids))]
    assert batch["labels"][0].tolist() == [label for example in order for label in [IGNORE_INDEX] + example.labels[1:]]
    assert batch["attention_mask"] is None
    assert int(batch["tokens"]) == sum(lengths)
    labelled = int((batch["labels"][0, 1:] != IGNORE_INDEX).sum())
    assert labelled == sum(row.label_count for row in rows)


def test_flatten_rows_ignores_first_label_of_single_rows(tiny_tokenizer: Any) -> None:
    items = examples(tiny_tokenizer)
    rows = single_rows(items[:2])
    rows[1] = type(rows[1])(rows[1].input_ids, [7] + rows[1].labels[1:], rows[1].position_ids, 1)

    batch = flatten_rows(rows)

    start = batch["segment_bounds"][1][0]
    assert batch["labels"][0, start].item() == IGNORE_INDEX


def test_flatten_rows_rejects_offset_row(tiny_tokenizer: Any) -> None:
    [row] = single_rows(examples(tiny_tokenizer)[:1])
    shifted = type(row)(row.input_ids, row.labels, [position + 1 for position in row.position_ids], 1)

    with pytest.raises(ValueError, match="position 0"):
        flatten_rows([shifted])


def test_segment_attention_matches_each_example_alone(tiny_base: Path, tiny_tokenizer: Any) -> None:
    items = examples(tiny_tokenizer)
    reference = load_model(tiny_base).eval()
    model = load_model(tiny_base).eval()
    assert use_segment_attention(model)
    assert model.config._attn_implementation == SEGMENT_ATTENTION

    batch = flatten_rows(single_rows(items))
    with torch.no_grad():
        flat = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=None,
            segment_bounds=batch["segment_bounds"], use_cache=False,
        ).logits[0]
        for example, (start, end) in zip(items, batch["segment_bounds"]):
            alone = reference(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
            torch.testing.assert_close(flat[start:end], alone, rtol=1e-4, atol=1e-4)

        # Without segment bounds the same model takes padded batches with their mask, as validation does.
        padded = collate_rows(single_rows(items), tiny_tokenizer.pad_token_id, packed=False)
        logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"], use_cache=False).logits
        for index, example in enumerate(items):
            alone = reference(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
            torch.testing.assert_close(logits[index, : len(example.input_ids)], alone, rtol=1e-4, atol=1e-4)


def test_segment_bounds_isolate_examples(tiny_base: Path, tiny_tokenizer: Any) -> None:
    """Guards the test above: the same flattened row without bounds must mix the examples."""
    items = examples(tiny_tokenizer)
    model = load_model(tiny_base).eval()
    use_segment_attention(model)
    batch = flatten_rows(single_rows(items))
    start, end = batch["segment_bounds"][1]

    with torch.no_grad():
        bounded = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], segment_bounds=batch["segment_bounds"],
            use_cache=False,
        ).logits[0]
        # One causal segment over the whole row: the second example attends to the first.
        whole = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], segment_bounds=[(0, batch["input_ids"].shape[1])],
            use_cache=False,
        ).logits[0]

    assert not torch.allclose(bounded[start:end], whole[start:end], atol=1e-3)


def test_flattened_loss_and_gradients_match_padded_batch(tiny_base: Path, tiny_tokenizer: Any) -> None:
    rows = single_rows(examples(tiny_tokenizer))
    model = lora_model(tiny_base, dropout=0.0)
    assert use_segment_attention(model.get_base_model())

    def loss_and_gradients(batch: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss = labelled_loss_sum(model, batch)
        loss.backward()
        gradients = {name: parameter.grad.clone() for name, parameter in model.named_parameters() if parameter.requires_grad}
        return loss.item(), gradients

    padded_loss, padded_gradients = loss_and_gradients(collate_rows(rows, tiny_tokenizer.pad_token_id, packed=False))
    flat_loss, flat_gradients = loss_and_gradients(flatten_rows(rows))

    assert flat_loss == pytest.approx(padded_loss, rel=1e-5)
    assert len(flat_gradients) > 0
    for name, gradient in padded_gradients.items():
        torch.testing.assert_close(flat_gradients[name], gradient, rtol=1e-4, atol=1e-6)


def test_eager_models_keep_their_attention(tiny_base: Path) -> None:
    model = load_model(tiny_base, attention="eager")

    assert not use_segment_attention(model)
    assert model.config._attn_implementation == "eager"


def test_dropped_positions_sorted_and_in_range() -> None:
    torch.manual_seed(0)
    positions = dropped_positions(100_000, 0.05, torch.device("cpu"))

    assert positions.dtype == torch.long
    assert bool((positions[1:] > positions[:-1]).all())
    assert int(positions[0]) >= 0
    assert int(positions[-1]) < 100_000
    assert dropped_positions(0, 0.05, torch.device("cpu")).numel() == 0


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_sparse_dropout_rate_and_independence(p: float) -> None:
    torch.manual_seed(3)
    count = 2_000_000
    dropped = torch.zeros(count, dtype=torch.bool)
    dropped[dropped_positions(count, p, torch.device("cpu"))] = True

    # Six standard deviations of a binomial proportion: a false failure about once in 10^9 runs.
    rate = dropped.float().mean().item()
    assert abs(rate - p) < 6 * math.sqrt(p * (1 - p) / count)
    # Neighbours are independent: both dropped with probability p², not more, not less.
    pairs = (dropped[1:] & dropped[:-1]).float().mean().item()
    assert abs(pairs - p * p) < 6 * math.sqrt(p * p * (1 - p * p) / (count - 1))


def test_sparse_dropout_scales_survivors_and_masks_gradients() -> None:
    torch.manual_seed(5)
    inputs = (torch.rand(64, 300) + 0.5).requires_grad_()
    dropout = SparseDropout(0.1).train()

    outputs = dropout(inputs)
    outputs.backward(torch.ones_like(outputs))

    survivors = outputs != 0
    assert 0 < int((~survivors).sum()) < outputs.numel()
    torch.testing.assert_close(outputs[survivors], inputs.detach()[survivors] / 0.9)
    assert bool((inputs.grad[~survivors] == 0).all())
    torch.testing.assert_close(inputs.grad[survivors], torch.full_like(inputs.grad[survivors], 1 / 0.9))


def test_sparse_dropout_reproducible_with_the_seed() -> None:
    dropout = SparseDropout(0.05).train()
    inputs = torch.ones(1000, 100)

    torch.manual_seed(11)
    first = dropout(inputs)
    torch.manual_seed(11)
    second = dropout(inputs)
    third = dropout(inputs)

    assert torch.equal(first, second)
    assert not torch.equal(second, third)


def test_sparse_dropout_off_in_eval_and_at_zero() -> None:
    inputs = torch.randn(10, 10)

    assert SparseDropout(0.05).eval()(inputs) is inputs
    assert SparseDropout(0.0).train()(inputs) is inputs


def test_sparse_dropout_high_rate_falls_back() -> None:
    torch.manual_seed(2)
    outputs = SparseDropout(0.6).train()(torch.ones(200_000))

    assert abs((outputs == 0).float().mean().item() - 0.6) < 0.01


def test_sparse_dropout_rejects_invalid_rate() -> None:
    with pytest.raises(ValueError, match="p=1.0"):
        SparseDropout(1.0)


def test_use_sparse_dropout_replaces_every_lora_dropout(tiny_base: Path) -> None:
    model = lora_model(tiny_base, dropout=0.05)
    lora_modules = [module for module in model.modules() if isinstance(getattr(module, "lora_dropout", None), nn.ModuleDict)]

    replaced = use_sparse_dropout(model)

    assert replaced == len(lora_modules) > 0
    assert all(isinstance(module.lora_dropout["default"], SparseDropout) for module in lora_modules)
    assert all(module.lora_dropout["default"].p == 0.05 for module in lora_modules)
