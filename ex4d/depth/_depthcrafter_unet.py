"""DepthCrafter's UNet: the SVD spatio-temporal UNet with one CLIP embedding per frame.

Kept in its own module because importing diffusers takes seconds; ``ex4d.depth.depthcrafter`` imports
it only when the weights are loaded.
"""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel
from torch import Tensor


class DepthCrafterUNet(UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` whose cross-attention sees each frame's own image embedding.

    Stock SVD conditions every frame on the embedding of one image (``encoder_hidden_states`` (B, 1, C),
    repeated over frames). DepthCrafter encodes every input frame and feeds frame f its embedding f, so
    ``encoder_hidden_states`` is (B, F, C). Same weights and config as the stock class (the
    ``tencent/DepthCrafter`` checkpoint loads into it unchanged); only the conditioning path differs.
    Inputs are cast to the weights' dtype, as DepthCrafter does, so fp32 VAE latents can be mixed in.
    """

    def forward(self, sample: Tensor, timestep: Tensor | float, encoder_hidden_states: Tensor,
                added_time_ids: Tensor) -> Tensor:
        """Predict the denoiser output.

        Args:
            sample: (B, F, C_in, h, w) noisy latents concatenated with the conditioning latents.
            timestep: scalar (0-dim tensor or float), the scheduler's timestep.
            encoder_hidden_states: (B, F, C_clip) one image embedding per frame.
            added_time_ids: (B, 3) (fps, motion bucket, noise augmentation strength).

        Returns:
            (B, F, C_out, h, w) in the weights' dtype.
        """
        B, F = sample.shape[:2]
        dtype = self.conv_in.weight.dtype
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(B)
        # time_proj returns float32; the embedding MLP runs in the weights' dtype.
        emb = self.time_embedding(self.time_proj(t).to(dtype))
        aug = self.add_time_proj(added_time_ids.flatten()).reshape(B, -1).to(emb.dtype)
        emb = (emb + self.add_embedding(aug)).repeat_interleave(F, dim=0)  # (B*F, C_emb)
        context = encoder_hidden_states.flatten(0, 1).unsqueeze(1).to(dtype)  # (B*F, 1, C_clip): frame f -> embedding f
        x = self.conv_in(sample.flatten(0, 1).to(dtype))
        indicator = torch.zeros(B, F, dtype=x.dtype, device=x.device)  # 0 = video frames (temporal layers active)

        skips = (x,)
        for block in self.down_blocks:
            kw = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            x, res = block(hidden_states=x, temb=emb, image_only_indicator=indicator, **kw)
            skips += res
        x = self.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator)
        for block in self.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            # Upsample to the next skip's exact size: identical to 2x for even sizes, and correct for odd ones.
            size = skips[-1].shape[2:] if skips else None
            kw = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            x = block(hidden_states=x, res_hidden_states_tuple=res, temb=emb, image_only_indicator=indicator,
                      upsample_size=size, **kw)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(B, F, *x.shape[1:])
