"""FP8 (e4m3) matmuls for the DiT's linear layers on Hopper, through ``torch._scaled_mm`` (opt-in, inexact).

About 95% of a Wan DiT forward's FLOPs at 13k tokens are the block linears (q/k/v/out of both attentions,
the image key/value projections, the FFN). Hopper runs e4m3 matmuls at twice the bf16 rate, so storing
those weights in fp8 and quantising the activations on the fly can cut the matmul time by up to half and
the weight memory of the blocks from 32 to 16 GB. It changes the numerics (3 mantissa bits): it is a
switch, off by default, whose latent delta the benchmark measures (tools/bench_generate.py).

* Weights: quantised once, ``rowwise`` (one scale per output feature) or ``tensorwise`` (one scale).
* Activations: quantised per call, ``rowwise`` (one scale per token) or ``tensorwise``; scale = amax / 448.
* Output in bf16 (``torch._scaled_mm`` rowwise requires it), bias added after, cast to the input dtype.

Without ``torch.compile`` the activation quantisation is three extra memory passes per linear; with the
regional compile of the blocks inductor fuses it into the preceding kernels, which is how it should run.
torchao does the same with more kernels, but it is not installed on the GPU host; this is the minimal
``_scaled_mm`` path. Only linears whose in and out features are multiples of 16 are converted
(``_scaled_mm``'s requirement); a peft LoRA layer keeps its bf16 LoRA matrices and gets an fp8 base layer.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from ex4d.utils.errors import InputError

FP8_MODES = ("off", "rowwise", "tensorwise")
E4M3 = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(E4M3).max)  # 448
_TINY = 1e-12  # floor of an amax, so an all-zero row quantises to zeros instead of NaN

# Linear layers inside blocks.{i} that become fp8: every linear of the attentions and the FFN (the LoRA
# matrices are excluded by name: they live under ``lora_A`` / ``lora_B``).
_BLOCK_LINEAR = re.compile(r"^blocks\.\d+\.(attn1|attn2|ffn)\.")


class Float8Linear(nn.Module):
    """An ``nn.Linear`` whose weight is stored in float8 e4m3 with fp32 scales; matmuls via ``torch._scaled_mm``.

    Args:
        linear: the layer to convert (weight (out, in), any float dtype); it is not modified.
        granularity: ``rowwise`` or ``tensorwise`` (see the module docstring).

    Buffers: ``weight_fp8`` (out, in) e4m3 row-major; ``weight_scale`` (1, out) fp32 (rowwise) or () fp32.
    """

    def __init__(self, linear: nn.Linear, granularity: str = "rowwise") -> None:
        super().__init__()
        if granularity not in FP8_MODES[1:]:
            raise InputError(f"fp8_linears: expected one of {FP8_MODES[1:]}, got {granularity!r}")
        if linear.in_features % 16 or linear.out_features % 16:
            raise InputError(
                f"Float8Linear: in/out features must be multiples of 16 for torch._scaled_mm, got "
                f"{linear.in_features} -> {linear.out_features}"
            )
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.granularity = granularity
        w = linear.weight.detach().float()
        if granularity == "rowwise":
            amax = w.abs().amax(dim=1, keepdim=True)  # (out, 1)
        else:
            amax = w.abs().amax()
        scale = amax.clamp(min=_TINY) / E4M3_MAX
        self.register_buffer("weight_fp8", (w / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3).contiguous())
        self.register_buffer("weight_scale", (scale.t() if granularity == "rowwise" else scale).contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def weight(self) -> Tensor:
        """Dequantised weight (out, in) in bf16: for code that inspects ``.weight`` (not used in forward)."""
        return (self.weight_fp8.float() * self.weight_scale.reshape(-1, 1) if self.granularity == "rowwise"
                else self.weight_fp8.float() * self.weight_scale).to(torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in) float -> (..., out) in x's dtype."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.granularity == "rowwise":
            amax = x2.abs().amax(dim=1, keepdim=True).float()  # (M, 1): one scale per token
        else:
            amax = x2.abs().amax().float()
        x_scale = amax.clamp(min=_TINY) / E4M3_MAX
        xq = (x2.float() / x_scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
        # mat2 must be column-major: the transpose of the row-major (out, in) weight is exactly that.
        y = torch._scaled_mm(xq, self.weight_fp8.t(), scale_a=x_scale, scale_b=self.weight_scale,
                             out_dtype=torch.bfloat16)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3 {self.granularity}"


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def fp8_targets(transformer: nn.Module) -> dict[str, nn.Linear]:
    """Name -> ``nn.Linear`` of the block linears that :func:`convert_to_fp8` converts (a peft LoRA layer
    contributes its ``base_layer``; LoRA matrices, embedders and the output projection stay as they are)."""
    out = {}
    for name, m in transformer.named_modules():
        if type(m) is nn.Linear and _BLOCK_LINEAR.match(name) and ".lora_" not in name:
            if m.in_features % 16 == 0 and m.out_features % 16 == 0:
                out[name] = m
    return out


@torch.no_grad()
def convert_to_fp8(transformer: nn.Module, granularity: str = "rowwise") -> dict[str, nn.Linear]:
    """Replace the DiT's block linears by :class:`Float8Linear` (in place, on their current device).

    Merge the LoRA first if it should be quantised with the base (otherwise it stays in bf16 on top).

    Returns:
        name -> the original ``nn.Linear``; pass it to :func:`restore_from_fp8` to undo, or drop it to free
        the bf16 weights (the fp8 weights alone are half their size).
    """
    if granularity == "off":
        return {}
    originals = fp8_targets(transformer)
    if not originals:
        raise InputError(
            f"fp8_linears: no block linear of {type(transformer).__name__} has in/out features divisible by 16"
        )
    for name, lin in originals.items():
        _set_submodule(transformer, name, Float8Linear(lin, granularity))
    return originals


def restore_from_fp8(transformer: nn.Module, originals: dict[str, nn.Linear]) -> None:
    """Undo :func:`convert_to_fp8` with the originals it returned."""
    for name, lin in originals.items():
        _set_submodule(transformer, name, lin)


__all__ = ["FP8_MODES", "Float8Linear", "convert_to_fp8", "fp8_targets", "restore_from_fp8"]
