"""Activation checkpointing of the DiT blocks during training (``module.checkpoint_policy``).

* ``full``: diffusers' own gradient checkpointing: every block keeps only its inputs and runs its whole
  forward again in the backward pass (recompute = one more DiT forward per step).
* ``save_self_attention``: selective checkpointing (PyTorch's ``create_selective_checkpoint_contexts``):
  as ``full``, except that the outputs of the self-attention kernel (the SDPA call whose queries and keys
  have the same length) are kept, so the backward pass recomputes the projections, norms and FFN but not
  the attention core. At 512x512x49 the self-attention core is about 31% of a forward's FLOPs and runs
  slower per FLOP than the linears; keeping it costs one (B, heads, tokens, head_dim) bf16 tensor plus the
  log-sum-exp per block (40 x 136 MB = 5.4 GB at 13,312 tokens). The cheap cross-attention calls (text /
  CLIP keys) are recomputed.

For ``save_self_attention`` the checkpoint sits inside each block's own ``forward``, so that regional
``torch.compile`` traces it (dynamo refuses to compile under the eager checkpoint's dispatch mode and
would silently fall back to eager). Gradients equal those of ``full`` (the kept tensors are what the
recompute would produce): ``tests/unit/test_checkpointing.py``.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from ex4d.pipelines.memory import SDPA_OPS as SDPA_KERNEL_OPS
from ex4d.training.strategy import strategy_info
from ex4d.utils.errors import InputError

CHECKPOINT_POLICIES = ("full", "save_self_attention")
AUTO = "auto"

# The fused kernels F.scaled_dot_product_attention dispatches to (the math fallback decomposes before
# any dispatch mode sees it); which exist depends on torch.
SDPA_OPS = frozenset(
    getattr(torch.ops.aten, name).default
    for name, backend in SDPA_KERNEL_OPS.items()
    if backend != "math" and hasattr(torch.ops.aten, name)
)


def is_self_attention(op, args: tuple) -> bool:
    """An SDPA kernel call whose queries and keys have the same sequence length (B, H, S, D layout)."""
    return op in SDPA_OPS and len(args) >= 2 and args[0].shape[-2] == args[1].shape[-2]


def save_self_attention_policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    """Selective-checkpoint policy: keep self-attention kernel outputs, recompute everything else."""
    return CheckpointPolicy.MUST_SAVE if is_self_attention(op, args) else CheckpointPolicy.PREFER_RECOMPUTE


def _checkpointed(forward, context_fn):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():  # inference (validation videos): nothing to keep
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=context_fn, **kwargs)

    return run


def resolve_checkpoint_policy(policy: str, strategy=None) -> str:
    """``auto`` = ``save_self_attention`` (1.13x faster per training step than ``full`` at 512x512x49 on an
    H100, +5.2 GiB; docs/performance.md), except under the strategies that shard the block parameters,
    DeepSpeed ZeRO-3 and FSDP (:func:`ex4d.training.strategy.strategy_info`): there only ``full`` has run. diffusers'
    checkpointing re-enters each block through its module hooks, where those strategies gather parameters;
    the selective wrapper recomputes inside the block."""
    if policy == AUTO:
        return "full" if strategy_info(strategy).shards_parameters else "save_self_attention"
    if policy not in CHECKPOINT_POLICIES:
        raise InputError(f"module.checkpoint_policy: expected {AUTO} or one of {CHECKPOINT_POLICIES}, got {policy!r}")
    return policy


def enable_block_checkpointing(transformer: nn.Module, policy: str = "full") -> None:
    """Turn on activation checkpointing of ``transformer.blocks`` with ``policy`` (module docstring).

    Call before ``compile_repeated_blocks`` or after: the compiled call looks ``forward`` up at run time.
    """
    if policy not in CHECKPOINT_POLICIES:
        raise InputError(f"module.checkpoint_policy: expected one of {CHECKPOINT_POLICIES}, got {policy!r}")
    if policy == "full":
        transformer.enable_gradient_checkpointing()
        return
    transformer.disable_gradient_checkpointing()  # the blocks checkpoint themselves
    context_fn = functools.partial(create_selective_checkpoint_contexts, save_self_attention_policy)
    for block in transformer.blocks:
        if getattr(block, "_ex4d_checkpoint_policy", None) is not None:
            raise RuntimeError("enable_block_checkpointing: the blocks are already checkpointed")
        block.forward = _checkpointed(block.forward, context_fn)
        block._ex4d_checkpoint_policy = policy
