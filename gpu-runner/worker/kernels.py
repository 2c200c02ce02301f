"""Two replacements for stock PEFT and transformers code on the LoRA training step.

Segment attention: the training step concatenates a micro-batch into one row with no
padding (batching.flatten_rows) and passes the (start, end) token offsets of every
example as `segment_bounds`. The attention function registered here runs causal SDPA on
each example's slice alone, so its cost is the sum of the squared example lengths. A
padded batch pays batch × longest², and a block-diagonal mask over the whole row pays
row². Without `segment_bounds` it is plain SDPA with the mask transformers built, so
padded validation batches keep working on the same model.

Sparse dropout: PEFT draws one uniform number per input element of every LoRA module
(`nn.Dropout` before lora_A). On a CPU that draw is a serial generator and, at p = 0.05,
took 19% of a training step of SmolLM2-135M (bench/step-profile.py, torch 2.13 on a
2-core Xeon). SparseDropout draws only the positions it drops, as geometric gaps
between them, which is the same Bernoulli(p) process with about p × n draws instead of n.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SEGMENT_ATTENTION = "segments"
# Above this dropout rate the gap draws stop saving much, so F.dropout runs instead.
SPARSE_DROPOUT_MAX_P = 0.25


def segment_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    segment_bounds: list[tuple[int, int]] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention with the signature of transformers' attention functions (5.x).

    query is (1, heads, tokens, head_dim) when segment_bounds is given; the result is
    (1, tokens, heads, head_dim) like sdpa_attention_forward's.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if segment_bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if query.shape[0] != 1:
        raise ValueError(
            f"segment_bounds requires a batch of one flattened row (batching.flatten_rows), got a batch of {query.shape[0]}"
        )
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], None,
            dropout=dropout, scaling=scaling, is_causal=True, **kwargs,
        )[0]
        for start, end in segment_bounds
    ]
    return torch.cat(outputs, dim=1), None


def use_segment_attention(model: Any) -> bool:
    """Switch a transformers model from SDPA to segment attention, or return False and leave any other kind.

    Models on eager attention (for example, those with logit softcapping in attention)
    or flash kernels keep theirs, and the caller then pads batches instead.
    NOTE: flattened rows are tested and timed on CPUs only. On CUDA they run the same torch
    operations, but no test or benchmark has covered that.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(SEGMENT_ATTENTION, segment_attention_forward)
    # Padded batches get the masks SDPA would get. A flattened row ignores its mask.
    ALL_MASK_ATTENTION_FUNCTIONS.register(SEGMENT_ATTENTION, sdpa_mask)
    model.set_attn_implementation(SEGMENT_ATTENTION)
    return model.config._attn_implementation == SEGMENT_ATTENTION


def dropped_positions(count: int, p: float, device: torch.device) -> torch.Tensor:
    """Return the sorted flat indices in [0, count) that a Bernoulli(p) dropout zeroes.

    The gap from one dropped index to the next is geometric: floor(log U / log(1 - p)) + 1
    for U uniform in (0, 1], so P(gap > k) = (1 - p)^k. Draws are float64, so the gap
    distribution is exact to about 2^-53, and they come from torch's default generator, so
    torch.manual_seed makes the positions reproducible.
    """
    mean = count * p
    # Enough gaps to pass `count` except with probability far below 1e-12. The loop covers the rest.
    draws = int(mean + 8 * math.sqrt(mean * (1 - p)) + 16)
    log_keep = math.log1p(-p)
    positions = torch.empty(0, dtype=torch.long, device=device)
    reached = -1
    while reached < count - 1:
        uniform = 1.0 - torch.rand(draws, dtype=torch.float64, device=device)
        gaps = torch.floor(torch.log(uniform) / log_keep).long() + 1
        more = torch.cumsum(gaps, 0) + reached
        positions = torch.cat([positions, more])
        reached = int(more[-1])
    return positions[: int(torch.searchsorted(positions, count))]


class _SparseDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, p: float) -> torch.Tensor:
        positions = dropped_positions(inputs.numel(), p, inputs.device)
        scale = 1.0 / (1.0 - p)
        outputs = inputs.mul(scale).contiguous()
        outputs.view(-1).index_fill_(0, positions, 0.0)
        ctx.save_for_backward(positions)
        ctx.scale = scale
        return outputs

    @staticmethod
    def backward(ctx: Any, grad_outputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        (positions,) = ctx.saved_tensors
        grad_inputs = grad_outputs.mul(ctx.scale).contiguous()
        grad_inputs.view(-1).index_fill_(0, positions, 0.0)
        return grad_inputs, None


class SparseDropout(nn.Module):
    """nn.Dropout(p) in distribution: each element zeroed with probability p, survivors scaled by 1 / (1 - p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p={p} must be in [0, 1)")
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        if self.p > SPARSE_DROPOUT_MAX_P:
            return F.dropout(inputs, self.p, training=True)
        return _SparseDropoutFunction.apply(inputs, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_sparse_dropout(model: nn.Module) -> int:
    """Replace the nn.Dropout of every PEFT LoRA module with SparseDropout; return how many were replaced."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is nn.Dropout:
                dropouts[name] = SparseDropout(dropout.p)
                replaced += 1
    return replaced
