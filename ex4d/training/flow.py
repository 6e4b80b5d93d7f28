"""The flow-matching training objective of Wan, as DiffSynth-Studio trains it (method doc, section 6).

With ``S = num_train_timesteps`` (1000) and shift ``s`` (5)::

    sigma'_i = linspace(1, 0, S + 1)[i],  i = 0 .. S-1          (1 down to 1/S; 0 excluded)
    sigma_i  = s sigma'_i / (1 + (s - 1) sigma'_i)              (the same shift as the sampler)
    t_i      = 1000 sigma_i                                     (what the DiT is given)
    x_t      = (1 - sigma) x_0 + sigma eps,   target v = eps - x_0
    loss     = w(t) * mean((v_hat - v)^2)
    w(t)    ~ exp(-2 ((t - S/2) / S)^2), shifted to minimum 0, scaled to mean 1 over the S timesteps

so the weight peaks at t = 500 and is exactly 0 at the timestep farthest from it (t = 1000, pure noise).
The index i is drawn uniformly. This is DiffSynth's ``FlowMatchScheduler(shift=5, sigma_min=0,
extra_one_step=True).set_timesteps(1000, training=True)``, except that DiffSynth casts the drawn timestep
to bf16 and then looks its sigma up by nearest timestep (so near t = 1000 the sigma it uses can differ from
the drawn one); here the index carries sigma, t and w together, in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ex4d.utils.errors import InputError

WEIGHTINGS = ("gaussian", "none")


def shifted_sigmas(num_train_timesteps: int = 1000, shift: float = 5.0) -> Tensor:
    """(S,) float32 training sigmas, descending from 1 (see the module docstring)."""
    s = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float32)[:-1]
    return shift * s / (1 + (shift - 1) * s)


def timestep_weights(timesteps: Tensor, num_train_timesteps: int = 1000) -> Tensor:
    """Loss weight per training timestep: exp(-2 ((t - S/2) / S)^2), minus its minimum, scaled to mean 1.

    Args:
        timesteps: (S,) the training timesteps t in [0, S].
    Returns:
        (S,) float32, min 0, mean 1.
    """
    t = timesteps.to(torch.float32)
    y = torch.exp(-2.0 * ((t - num_train_timesteps / 2) / num_train_timesteps) ** 2)
    y = y - y.min()
    return y * (y.numel() / y.sum())


@dataclass
class TimestepDraw:
    """One draw per sample: index into the schedule, timestep t, sigma and loss weight, each (B,) on the CPU."""

    index: Tensor
    timestep: Tensor
    sigma: Tensor
    weight: Tensor


class FlowMatchingSchedule:
    """Config ``module.flow``: the training timesteps, their sigmas and loss weights.

    Args:
        num_train_timesteps: S (1000).
        shift: sigma shift (5, as the sampler).
        weighting: ``gaussian`` (the DiffSynth weighting above) or ``none`` (w = 1).
    """

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 5.0, weighting: str = "gaussian") -> None:
        if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
            raise InputError(f"module.flow.num_train_timesteps: expected an integer >= 2, got {num_train_timesteps!r}")
        if not float(shift) > 0:
            raise InputError(f"module.flow.shift: expected > 0, got {shift!r}")
        if weighting not in WEIGHTINGS:
            raise InputError(f"module.flow.weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.shift = float(shift)
        self.weighting = weighting
        self.sigmas = shifted_sigmas(self.num_train_timesteps, self.shift)
        self.timesteps = self.sigmas * 1000.0
        if weighting == "gaussian":
            self.weights = timestep_weights(self.timesteps, self.num_train_timesteps)
        else:
            self.weights = torch.ones_like(self.timesteps)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> TimestepDraw:
        """Uniform indices (B,) from a CPU generator, and their t, sigma and weight."""
        idx = torch.randint(0, self.num_train_timesteps, (batch_size,), generator=generator)
        return TimestepDraw(idx, self.timesteps[idx], self.sigmas[idx], self.weights[idx])

    @staticmethod
    def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        """x_t = (1 - sigma) x0 + sigma noise; ``sigma`` (B,) broadcasts over (B, ...)."""
        s = sigma.to(device=x0.device, dtype=x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return (1 - s) * x0 + s * noise

    @staticmethod
    def target(x0: Tensor, noise: Tensor) -> Tensor:
        """Velocity target v = noise - x0."""
        return noise - x0

    def __repr__(self) -> str:
        return (f"FlowMatchingSchedule(num_train_timesteps={self.num_train_timesteps}, shift={self.shift}, "
                f"weighting={self.weighting!r})")
