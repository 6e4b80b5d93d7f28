"""Time DepthCrafterBackend at the reference's shape with random weights of the real architecture.

Speed and memory do not depend on the weights' values, so this needs no download. Components: SVD
img2vid's UNet (1.5 B), temporal-decoder VAE and CLIP ViT-H/14 image encoder, fp16 on one GPU.

    python tools/bench_depthcrafter.py --frames 49 --height 576 --width 1024
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# SVD img2vid's scheduler_config.json and CLIP normalisation (feature_extractor/preprocessor_config.json).
SVD_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                     steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
CLIP_NORM = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}


def svd_components(device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ex4d.depth._depthcrafter_unet import DepthCrafterUNet
    from ex4d.depth.depthcrafter import _Components

    with torch.device(device):
        unet = DepthCrafterUNet()  # diffusers' defaults are SVD's UNet config
        vae = AutoencoderKLTemporalDecoder(block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                                           down_block_types=["DownEncoderBlock2D"] * 4, latent_channels=4,
                                           sample_size=768, scaling_factor=0.18215, force_upcast=True)
        enc = CLIPVisionModelWithProjection(CLIPVisionConfig(  # CLIP ViT-H/14
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
            image_size=224, projection_dim=1024, hidden_act="gelu"))
    for m in (unet, vae, enc):  # .to(device) too: legacy-constructed buffers (AlphaBlender) ignore the device context
        m.to(device, dtype).eval().requires_grad_(False)
    mean = torch.tensor(CLIP_NORM["image_mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_NORM["image_std"], device=device).view(1, 3, 1, 1)
    params = {k: sum(p.numel() for p in m.parameters())
              for k, m in [("unet", unet), ("vae", vae), ("image_encoder", enc)]}
    return _Components(unet, vae, enc, EulerDiscreteScheduler(**SVD_SCHEDULER), mean, std), params


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--window", type=int, default=110)
    ap.add_argument("--overlap", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from ex4d.depth.depthcrafter import DepthCrafterBackend

    device, dtype = torch.device("cuda"), torch.float16
    b = DepthCrafterBackend(window=args.window, overlap=args.overlap, device="cuda")
    b._c, params = svd_components(device, dtype)
    b._device, b._dtype = device, dtype
    frames = torch.randint(0, 256, (args.frames, args.height, args.width, 3), dtype=torch.uint8)
    b.predict_disparity(frames[:8, :256, :256])  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        b.predict_disparity(frames)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "shape": [args.frames, args.height, args.width],
           "window": args.window, "overlap": args.overlap, "steps": b.steps, "params": params,
           "seconds": times, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
