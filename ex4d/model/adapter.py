"""The EX-4D adapter on top of the frozen Wan DiT: a geometry encoder and LoRA.

* :class:`GeometryEncoder`: VAE latents of the masked colour video and of the mask video (16 + 16
  channels) -> Conv3d 1x1x1 32->1024, SiLU, 1x1x1 1024->1024, SiLU, 1x1x1 1024->1024 (no activation after
  the third) -> Conv3d 1024->dim with kernel = stride = (1, 2, 2), zero-initialised. The output has the
  shape of the DiT's patch embedding, (B, dim, F, h/2, w/2), and is **added to the DiT tokens right after
  the patch embedding**, before block 0, in both CFG branches. Zero init makes the adapter start as a no-op.
  Module names (``latent_encoder.{0,2,4}``, ``latent_patch_embedding``) follow the reference's CamVidEncoder.
* LoRA through peft on every block's self-attention q/k/v/out, text cross-attention q/k/v/out and both
  FFN linears (diffusers names below); not the image key/value projections (``add_k_proj``/``add_v_proj``).
  peft default init: A Kaiming-uniform, B zero; scale alpha / rank.
* :class:`EX4DTransformer` wraps the diffusers transformer: a forward hook on ``patch_embedding`` adds the
  geometry tokens, so diffusers' forward stays untouched (works with offloading hooks and regional compile).
* Inference can merge the LoRA into the base weights (``W += scale B A``: one matmul per linear instead of
  three) and unmerge it exactly: :meth:`EX4DTransformer.merge_lora` keeps a copy of the base weights of the
  LoRA targets only (not of the whole DiT), and :meth:`EX4DTransformer.unmerge_lora` copies them back, bit
  for bit. peft's own unmerge subtracts ``scale B A`` again, which in bf16 does not return the original
  weights (each ``(W + d) - d`` rounds twice).

Counts at the 14B shape (dim 5120, FFN 13824, 40 blocks): LoRA r16 = 76,677,120; encoder = 23,109,632;
total 99,786,752.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ex4d.utils.checks import check_number
from ex4d.utils.errors import InputError

DEFAULT_ADAPTER = "ex4d"  # peft adapter name of the EX-4D LoRA inside the transformer
# Width of the geometry encoder's 1x1x1 convolutions in the released adapter: the one home of the value. A model
# loader carries the width its adapters use (``model.encoder_hidden_channels``; the tiny test model: a smaller one).
ENCODER_HIDDEN_CHANNELS = 1024

# Reference DiT (DiffSynth WanModel) module -> diffusers WanTransformer3DModel module, inside blocks.{i}.
REFERENCE_TO_DIFFUSERS = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
DIFFUSERS_TO_REFERENCE = {v: k for k, v in REFERENCE_TO_DIFFUSERS.items()}

# The released EX-4D targets ("q,k,v,o,ffn.0,ffn.2" in the reference), as diffusers module-name suffixes.
REFERENCE_LORA_TARGETS = (
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
    "ffn.net.0.proj", "ffn.net.2",
)

_LORA_INITS = {"kaiming": True, "gaussian": "gaussian"}


@dataclass
class LoraSettings:
    """Schema of config group ``lora`` (checked on construction, so a bad value fails at composition).

    Attributes:
        rank: LoRA rank r > 0 (released checkpoint: 16).
        alpha: LoRA alpha > 0; the update is scaled by alpha / rank. None (the default) = the rank, i.e. scale 1
            at every rank, as released (rank 16, alpha 16): changing the rank alone keeps the scale.
        targets: module-name suffixes inside each ``blocks.{i}`` of the diffusers DiT.
        dropout: LoRA dropout in [0, 1) (training only).
        init: ``kaiming`` (peft default: A Kaiming-uniform, B zero) or ``gaussian`` (A normal, B zero).
    """

    rank: int = 16
    alpha: float | None = None
    targets: list[str] = field(default_factory=lambda: list(REFERENCE_LORA_TARGETS))
    dropout: float = 0.0
    init: str = "kaiming"

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank <= 0:
            raise InputError(f"lora.rank: expected an integer > 0, got {self.rank!r}")
        if self.alpha is None:
            self.alpha = self.rank  # follows the rank unless set
        check_number(self.alpha, "lora.alpha", positive=True)  # NaN would train on NaN losses without a word
        self.alpha = float(self.alpha)
        if isinstance(self.targets, str):
            raise InputError(f"lora.targets: expected a list of module names, got the string {self.targets!r}")
        self.targets = [str(t) for t in self.targets]
        if not self.targets:
            raise InputError("lora.targets: expected at least one module name, got an empty list")
        bad = [t for t in self.targets if not t or t.startswith(".") or t.endswith(".") or " " in t]
        if bad:
            raise InputError(f"lora.targets: malformed module names {bad}")
        if len(set(self.targets)) != len(self.targets):
            raise InputError(f"lora.targets: duplicate entries in {self.targets}")
        if not 0.0 <= check_number(self.dropout, "lora.dropout") < 1.0:
            raise InputError(f"lora.dropout: expected 0 <= dropout < 1, got {self.dropout!r}")
        if self.init not in _LORA_INITS:
            raise InputError(f"lora.init: expected one of {sorted(_LORA_INITS)}, got {self.init!r}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class GeometryEncoder(nn.Module):
    """Colour + mask latents -> tokens added after the DiT patch embedding.

    Args:
        latent_channels: VAE latent channels per input (16); the encoder sees 2x this.
        hidden_channels: width of the 1x1x1 convolutions (:data:`ENCODER_HIDDEN_CHANNELS`).
        out_channels: DiT inner dim (5120 for the 14B model).
        patch_size: the DiT's (t, h, w) patch size (1, 2, 2).
    """

    def __init__(
        self,
        latent_channels: int = 16,
        hidden_channels: int = ENCODER_HIDDEN_CHANNELS,
        out_channels: int = 5120,
        patch_size: Sequence[int] = (1, 2, 2),
    ) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.patch_size = tuple(int(p) for p in patch_size)
        self.latent_encoder = nn.Sequential(
            nn.Conv3d(2 * latent_channels, hidden_channels, kernel_size=1),
            nn.SiLU(),
            nn.Conv3d(hidden_channels, hidden_channels, kernel_size=1),
            nn.SiLU(),
            nn.Conv3d(hidden_channels, hidden_channels, kernel_size=1),
        )
        self.latent_patch_embedding = nn.Conv3d(
            hidden_channels, out_channels, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.zero_init_output()

    def zero_init_output(self) -> None:
        """Zero the patch projection: the adapter then adds exactly nothing to the DiT tokens."""
        nn.init.zeros_(self.latent_patch_embedding.weight)
        nn.init.zeros_(self.latent_patch_embedding.bias)

    def forward(self, z_colour: Tensor, z_mask: Tensor) -> Tensor:
        """Args:
            z_colour: (B, 16, F, h, w) normalised VAE latent of x_c = 2 (C * M) - 1.
            z_mask: (B, 16, F, h, w) normalised VAE latent of the mask video (see the generator's mask_encoding).

        Returns:
            (B, dim, F, h/2, w/2) tokens in the encoder's dtype, laid out like the DiT patch embedding output.
        """
        if z_colour.shape != z_mask.shape:
            raise InputError(f"geometry encoder: colour latent {tuple(z_colour.shape)} != mask latent {tuple(z_mask.shape)}")
        dtype = self.latent_patch_embedding.weight.dtype
        z = torch.cat([z_colour, z_mask], dim=1).to(dtype)
        return self.latent_patch_embedding(self.latent_encoder(z))


def attach_lora(transformer: nn.Module, settings: LoraSettings, adapter_name: str = DEFAULT_ADAPTER) -> int:
    """Inject LoRA layers (peft) into every ``blocks.{i}.<target>`` of a diffusers Wan transformer.

    Returns:
        number of wrapped modules. Raises InputError when a target matches no module.
    """
    from peft import LoraConfig

    names = [n for n, _ in transformer.named_modules()]
    for t in settings.targets:
        if not any(n.startswith("blocks.") and n.endswith("." + t) for n in names):
            raise InputError(
                f"lora.targets: {t!r} matches no module inside the blocks of {type(transformer).__name__} "
                f"(expected names like {list(REFERENCE_LORA_TARGETS)[:3]})"
            )
    # Anchor to blocks.{i}. so that the image embedder's FeedForward (condition_embedder.image_embedder.ff.net.*)
    # or any future non-block module with the same suffix is never wrapped.
    pattern = r"blocks\.\d+\.(" + "|".join(t.replace(".", r"\.") for t in settings.targets) + r")"
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=float(settings.dropout),
        init_lora_weights=_LORA_INITS[settings.init],
        target_modules=pattern,
    )
    # Create the LoRA matrices where the DiT lives (meta stays meta: counting the 14B shape costs no memory).
    with torch.device(transformer.patch_embedding.weight.device):
        transformer.add_adapter(config, adapter_name=adapter_name)
    return sum(1 for n, m in transformer.named_modules() if hasattr(m, "lora_A") and adapter_name in m.lora_A)


def lora_modules(transformer: nn.Module, adapter_name: str = DEFAULT_ADAPTER) -> dict[str, nn.Module]:
    """Module name -> peft LoRA layer holding ``adapter_name``."""
    return {n: m for n, m in transformer.named_modules() if hasattr(m, "lora_A") and adapter_name in m.lora_A}


def lora_parameters(transformer: nn.Module, adapter_name: str = DEFAULT_ADAPTER) -> dict[str, nn.Parameter]:
    """``'<module>.lora_A.weight'`` (adapter name dropped) -> parameter, for every LoRA matrix of the adapter."""
    out: dict[str, nn.Parameter] = {}
    for name, m in lora_modules(transformer, adapter_name).items():
        for part in ("lora_A", "lora_B"):
            for pname, p in getattr(m, part)[adapter_name].named_parameters():
                out[f"{name}.{part}.{pname}"] = p
    return out


class EX4DTransformer(nn.Module):
    """The Wan DiT with the EX-4D adapter: LoRA inside, geometry tokens added after the patch embedding.

    Args:
        transformer: diffusers ``WanTransformer3DModel`` (LoRA attached with :func:`attach_lora` or not).
        encoder: :class:`GeometryEncoder` whose ``out_channels`` equals the DiT inner dim.
        adapter_name: the peft adapter name of the EX-4D LoRA.
    """

    def __init__(self, transformer: nn.Module, encoder: GeometryEncoder, adapter_name: str = DEFAULT_ADAPTER) -> None:
        super().__init__()
        inner = transformer.patch_embedding.out_channels
        if encoder.out_channels != inner:
            raise InputError(f"geometry encoder out_channels {encoder.out_channels} != DiT inner dim {inner}")
        if tuple(encoder.patch_size) != tuple(transformer.patch_embedding.kernel_size):
            raise InputError(
                f"geometry encoder patch {encoder.patch_size} != DiT patch {tuple(transformer.patch_embedding.kernel_size)}"
            )
        self.transformer = transformer
        self.encoder = encoder
        self.adapter_name = adapter_name
        self._geometry: Tensor | None = None
        self._base_copy: dict[str, Tensor] | None = None  # exact base weights of the LoRA targets (merge_lora)
        self._hook = transformer.patch_embedding.register_forward_hook(self._add_geometry)

    def _add_geometry(self, module: nn.Module, args, output: Tensor) -> Tensor | None:
        g = self._geometry
        if g is None:
            return None
        if g.shape[1:] != output.shape[1:] or g.shape[0] not in (1, output.shape[0]):
            raise InputError(f"geometry tokens {tuple(g.shape)} do not match the DiT patch embedding {tuple(output.shape)}")
        return output + g.to(device=output.device, dtype=output.dtype)

    def detach_hook(self) -> None:
        """Remove the forward hook (the plain transformer then runs without geometry)."""
        self._hook.remove()

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_hidden_states_image: Tensor | None = None,
        *,
        geometry: Tensor | None = None,
        z_colour: Tensor | None = None,
        z_mask: Tensor | None = None,
    ) -> Tensor:
        """One DiT forward (one CFG branch).

        Args:
            hidden_states: (B, 36, F, h, w) noise latent + frame mask + first-frame latent.
            timestep: (B,) float timesteps in [0, 1000].
            encoder_hidden_states: (B, 512, text_dim) prompt embeddings (zero-padded to 512).
            encoder_hidden_states_image: (B, 257, 1280) CLIP tokens.
            geometry: precomputed :class:`GeometryEncoder` output (1 or B, dim, F, h/2, w/2); or give
            z_colour, z_mask: the latents, and the encoder runs here (training: gradients reach it).

        Returns:
            (B, 16, F, h, w) flow prediction, in the transformer's dtype.
        """
        if geometry is None and (z_colour is not None or z_mask is not None):
            if z_colour is None or z_mask is None:
                raise InputError("EX4DTransformer: give both z_colour and z_mask (or neither)")
            geometry = self.encoder(z_colour, z_mask)
        self._geometry = geometry
        try:
            return self.transformer(
                hidden_states=hidden_states,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                encoder_hidden_states_image=encoder_hidden_states_image,
                return_dict=False,
            )[0]
        finally:
            self._geometry = None

    # ---- LoRA merge for inference ---------------------------------------------------------------

    @property
    def lora_merged(self) -> bool:
        """True while this adapter's LoRA is merged into the base weights."""
        modules = lora_modules(self.transformer, self.adapter_name).values()
        return any(self.adapter_name in m.merged_adapters for m in modules)

    @torch.no_grad()
    def merge_lora(self, keep_base: bool = True) -> None:
        """Merge the LoRA into the base weights (peft ``merge``: ``W += scale B A`` in the weight dtype).

        Args:
            keep_base: first copy the base weights of the LoRA targets to the CPU (pinned when they live on
                CUDA; 28 GB in bf16 at the 14B shape), so that :meth:`unmerge_lora` restores them exactly. The
                copy is taken once and reused by later merges, because the base weights are frozen (only the
                LoRA matrices may change between merges, e.g. while training); :meth:`release_base_copy` drops it.
                False: no copy; unmerging then uses peft's subtraction (not exact in bf16).
        """
        if self.lora_merged:
            raise RuntimeError("merge_lora: the LoRA is already merged; unmerge_lora first")
        modules = lora_modules(self.transformer, self.adapter_name)
        if keep_base and self._base_copy is None:
            copy: dict[str, Tensor] = {}
            for name, m in modules.items():
                w = m.get_base_layer().weight
                pin = w.device.type == "cuda"
                host = torch.empty(w.shape, dtype=w.dtype, device="cpu", pin_memory=pin)
                host.copy_(w.data, non_blocking=pin)
                copy[name] = host
            if any(h.is_pinned() for h in copy.values()):
                torch.cuda.synchronize()  # the non_blocking copies must land before the weights change
            self._base_copy = copy
        for m in modules.values():
            m.merge(adapter_names=[self.adapter_name])

    @torch.no_grad()
    def unmerge_lora(self) -> None:
        """Undo :meth:`merge_lora`: restore the kept base weights bit for bit (or, without a copy, subtract
        ``scale B A`` as peft does, which in bf16 leaves rounding differences). No-op when not merged."""
        for name, m in lora_modules(self.transformer, self.adapter_name).items():
            if self.adapter_name not in m.merged_adapters:
                continue
            if self._base_copy is not None:
                w = m.get_base_layer().weight
                w.data.copy_(self._base_copy[name], non_blocking=w.device.type == "cuda")
                m.merged_adapters.remove(self.adapter_name)
            else:
                if m.merged_adapters != [self.adapter_name]:
                    raise RuntimeError(f"unmerge_lora: {name} has other merged adapters {m.merged_adapters}")
                m.unmerge()

    def release_base_copy(self) -> None:
        """Drop the CPU copy of the base weights kept by :meth:`merge_lora` (unmerge first to restore them)."""
        if self.lora_merged and self._base_copy is not None:
            raise RuntimeError("release_base_copy: unmerge_lora first, or the exact base weights are lost")
        self._base_copy = None

    @contextlib.contextmanager
    def merged_lora(self, keep_base: bool = True) -> Iterator[None]:
        """Context in which the LoRA is merged; on exit the base weights are restored (exactly with ``keep_base``)."""
        self.merge_lora(keep_base)
        try:
            yield
        finally:
            self.unmerge_lora()

    # ---- parameter bookkeeping -------------------------------------------------------------------

    def lora_parameters(self) -> dict[str, nn.Parameter]:
        return lora_parameters(self.transformer, self.adapter_name)

    def adapter_parameters(self) -> Iterator[nn.Parameter]:
        """LoRA matrices of this adapter + every encoder parameter (what training updates)."""
        yield from self.lora_parameters().values()
        yield from self.encoder.parameters()

    def mark_trainable(self) -> None:
        """Freeze the backbone; only LoRA of this adapter and the encoder require gradients."""
        self.transformer.requires_grad_(False)
        self.encoder.requires_grad_(True)
        for p in self.lora_parameters().values():
            p.requires_grad_(True)

    def set_adapter_dtype(self, dtype: torch.dtype) -> None:
        """Cast LoRA matrices and the encoder (e.g. fp32 for training, the DiT dtype for inference)."""
        for p in self.lora_parameters().values():
            p.data = p.data.to(dtype)
        self.encoder.to(dtype)

    def parameter_counts(self) -> dict[str, int]:
        lora = sum(p.numel() for p in self.lora_parameters().values())
        enc = sum(p.numel() for p in self.encoder.parameters())
        return {"lora": lora, "encoder": enc, "total": lora + enc}


@torch.no_grad()
def randomize_adapter_(model: EX4DTransformer, seed: int = 0, std: float | None = None) -> EX4DTransformer:
    """Fill every LoRA factor and geometry-encoder weight with seeded normal values and zero the biases.

    Args:
        std: None (default): each weight tensor gets std 1 / sqrt(fan_in) (its input features), so every layer
            has unit gain at any width: the geometry tokens come out as large as the DiT's patch tokens and each
            LoRA update as large as its base layer, on the TEST-ONLY tiny model as at 14B. A number: that std for
            every tensor (0.02 on the tiny model leaves the geometry tokens ~1e-4 of the patch tokens: its output
            no longer depends on the colour and mask videos).

    BENCHMARK / TEST ONLY: a non-zero adapter, so that its wiring changes the output (a fresh adapter is an
    exact no-op: LoRA B and the encoder's last layer start at zero) and so that runs on random backbones
    have an adapter whose checkpoint cannot be downloaded (``checkpoint=random``). Never a result.
    """
    g = torch.Generator().manual_seed(int(seed))
    params = [*model.lora_parameters().items(), *model.encoder.named_parameters()]
    for name, p in params:
        if name.endswith("bias"):
            p.zero_()
        else:
            scale = p[0].numel() ** -0.5 if std is None else float(std)  # p[0]: one output row = fan_in values
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model


def build_ex4d_transformer(
    transformer: nn.Module,
    lora: LoraSettings | None = None,
    *,
    hidden_channels: int = ENCODER_HIDDEN_CHANNELS,
    latent_channels: int = 16,
    adapter_name: str = DEFAULT_ADAPTER,
    dtype: torch.dtype | None = None,
) -> EX4DTransformer:
    """Attach LoRA (when ``lora`` is given) and a zero-initialised geometry encoder sized to ``transformer``.

    The encoder is created on the transformer's device (meta stays meta) in ``dtype`` (default the DiT's).
    """
    if lora is not None:
        attach_lora(transformer, lora, adapter_name)
    pe = transformer.patch_embedding
    device = pe.weight.device
    with torch.device(device):
        encoder = GeometryEncoder(latent_channels, hidden_channels, pe.out_channels, pe.kernel_size)
    encoder.to(dtype or pe.weight.dtype)
    model = EX4DTransformer(transformer, encoder, adapter_name)
    model.set_adapter_dtype(dtype or pe.weight.dtype)
    return model
