"""Chat-template loss masks token by token, left truncation, and packed rows on the tiny model.

The expected token sequences are built independently of worker.data: each ChatML piece
(`<|im_start|>role\\n`, the content, `<|im_end|>`, the line break) is tokenized on its
own and marked as trained or not, then concatenated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from worker.batching import collate_rows, pack_rows, single_rows
from worker.data import IGNORE_INDEX, Conversation, tokenize_conversation, tokenize_dataset

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Double 3."},
    {"role": "assistant", "content": "6"},
    {"role": "user", "content": "And triple it?"},
    {"role": "assistant", "content": "9, because\n3 times 3 is 9."},
]


def expected_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Return the ChatML token ids of messages and the labels the worker must give them.

    Labels equal the ids on assistant content and its `<|im_end|>`; everything else
    (template tokens, role headers, system and user content, line breaks) is IGNORE_INDEX.
    """
    ids: list[int] = []
    labels: list[int] = []

    def add(text: str, trained: bool) -> None:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if trained else [IGNORE_INDEX] * len(piece))

    for message in messages:
        assistant = message["role"] == "assistant"
        add(f"<|im_start|>{message['role']}\n", False)
        add(message["content"], assistant)
        add("<|im_end|>", assistant)
        add("\n", False)
    return ids, labels


def test_masks_match_template_token_by_token(tiny_tokenizer: Any) -> None:
    ids, labels = expected_tokens(tiny_tokenizer, CONVERSATION)

    example = tokenize_conversation(tiny_tokenizer, Conversation(1, CONVERSATION), max_seq_length=512)

    assert example is not None
    assert example.input_ids == ids
    for position, (label, expected) in enumerate(zip(example.labels, labels)):
        token = tiny_tokenizer.convert_ids_to_tokens(ids[position])
        assert label == expected, f"position {position} token {token!r}: label {label}, expected {expected}"
    assert len(example.labels) == len(labels)
    assert not example.truncated


def test_left_truncation_keeps_head_and_answer(tiny_tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Context: " + "the cell divides " * 40 + "Question: does it divide?"},
        {"role": "assistant", "content": "yes, it divides."},
    ]
    full_ids, full_labels = expected_tokens(tiny_tokenizer, messages)
    head_ids, _ = expected_tokens(tiny_tokenizer, messages[:1])
    head_ids += tiny_tokenizer("<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    max_length = len(full_ids) - 30

    example = tokenize_conversation(tiny_tokenizer, Conversation(1, messages), max_seq_length=max_length)

    assert example is not None
    assert example.truncated
    assert len(example.input_ids) == max_length
    head = len(head_ids)
    tail = max_length - head
    # The head is the system turn and the user header, whole; then the newest prompt tokens and the answer.
    assert example.input_ids[:head] == head_ids
    assert example.input_ids[head:] == full_ids[-tail:]
    assert example.labels[:head] == [IGNORE_INDEX] * head
    assert example.labels[head:] == full_labels[-tail:]
    assert tiny_tokenizer.decode([label for label in example.labels if label != IGNORE_INDEX]) == "yes, it divides.<|im_end|>"
    assert tiny_tokenizer.convert_ids_to_tokens(example.input_ids[0]) == "<|im_start|>"


def test_left_truncation_without_room_for_head(tiny_tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "A long system prompt " * 20},
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": "Answer."},
    ]
    full_ids, full_labels = expected_tokens(tiny_tokenizer, messages)

    example = tokenize_conversation(tiny_tokenizer, Conversation(1, messages), max_seq_length=40)

    assert example is not None
    assert example.input_ids == full_ids[-40:]
    assert example.labels == full_labels[-40:]


def test_answer_longer_than_limit_dropped(tiny_tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "long answer " * 30}]

    assert tokenize_conversation(tiny_tokenizer, Conversation(5, messages), max_seq_length=32) is None


def packed_examples(tokenizer: Any) -> list[Any]:
    conversations = [
        Conversation(1, CONVERSATION),
        Conversation(2, [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]),
        Conversation(3, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]),
    ]
    return tokenize_dataset(tokenizer, conversations, max_seq_length=512).examples


def test_packed_row_labels_and_positions(tiny_tokenizer: Any) -> None:
    examples = packed_examples(tiny_tokenizer)

    [row] = pack_rows(examples, max_seq_length=512)

    # First fit by decreasing length: the longest example first.
    order = sorted(examples, key=lambda example: -len(example.input_ids))
    assert row.example_count == 3
    assert row.input_ids == [token for example in order for token in example.input_ids]
    expected_labels = [label for example in order for label in [IGNORE_INDEX] + example.labels[1:]]
    assert row.labels == expected_labels
    assert row.position_ids == [position for example in order for position in range(len(example.input_ids))]
    assert row.label_count == sum(example.label_count for example in examples)


def test_pack_rows_respects_limit(tiny_tokenizer: Any) -> None:
    examples = packed_examples(tiny_tokenizer)
    longest = max(len(example.input_ids) for example in examples)

    rows = pack_rows(examples, max_seq_length=longest)

    assert all(len(row.input_ids) <= longest for row in rows)
    assert sum(row.example_count for row in rows) == len(examples)
    assert len(rows) >= 2


@pytest.fixture(scope="module")
def tiny_model(tiny_base: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32, local_files_only=True)
    return model.eval()


def test_packed_logits_match_separate_runs(tiny_tokenizer: Any, tiny_model: Any) -> None:
    examples = packed_examples(tiny_tokenizer)
    rows = pack_rows(examples, max_seq_length=512)
    # A second, shorter row makes the batch padded, so the padding segment is covered too.
    rows.append(single_rows(examples[1:2])[0])
    batch = collate_rows(rows, tiny_tokenizer.pad_token_id, packed=True)

    with torch.no_grad():
        packed_logits = tiny_model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=None, use_cache=False
        ).logits

    order = sorted(examples, key=lambda example: -len(example.input_ids))
    offset = 0
    for example in order:
        size = len(example.input_ids)
        with torch.no_grad():
            alone = tiny_model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
        torch.testing.assert_close(packed_logits[0, offset : offset + size], alone, rtol=1e-4, atol=1e-4)
        offset += size
    with torch.no_grad():
        second = tiny_model(input_ids=torch.tensor([examples[1].input_ids]), use_cache=False).logits[0]
    torch.testing.assert_close(packed_logits[1, : len(examples[1].input_ids)], second, rtol=1e-4, atol=1e-4)


def test_packed_logits_differ_without_position_restarts(tiny_tokenizer: Any, tiny_model: Any) -> None:
    """Guards the test above: plain concatenation must leak, or that test would prove nothing."""
    examples = packed_examples(tiny_tokenizer)
    [row] = pack_rows(examples, max_seq_length=512)
    order = sorted(examples, key=lambda example: -len(example.input_ids))
    first = len(order[0].input_ids)

    with torch.no_grad():
        concatenated = tiny_model(input_ids=torch.tensor([row.input_ids]), use_cache=False).logits[0]
        alone = tiny_model(input_ids=torch.tensor([order[1].input_ids]), use_cache=False).logits[0]

    assert not torch.allclose(concatenated[first : first + len(order[1].input_ids)], alone, atol=1e-3)


def test_collate_packed_padding_ignored(tiny_tokenizer: Any) -> None:
    examples = packed_examples(tiny_tokenizer)
    rows = single_rows(examples)

    batch = collate_rows(rows, tiny_tokenizer.pad_token_id, packed=True)

    assert batch["attention_mask"] is None
    lengths = [len(example.input_ids) for example in examples]
    width = max(lengths)
    for index, size in enumerate(lengths):
        assert batch["labels"][index, size:].tolist() == [IGNORE_INDEX] * (width - size)
        assert batch["position_ids"][index].tolist() == list(range(size)) + list(range(width - size))
    assert int(batch["tokens"]) == sum(lengths)
