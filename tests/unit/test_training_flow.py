"""The flow-matching objective: shifted training timesteps and the timestep weighting."""

import pytest
import torch

from ex4d.pipelines.conditioning import reference_sigmas
from ex4d.training.flow import FlowMatchingSchedule, shifted_sigmas, timestep_weights
from ex4d.utils.errors import InputError


def test_timestep_weights_min_zero_mean_one_peak_at_500():
    s = FlowMatchingSchedule(1000, shift=5.0)
    w = s.weights
    assert w.shape == (1000,) and w.dtype == torch.float32
    assert w.min().item() == 0.0
    assert w.mean().item() == pytest.approx(1.0, abs=1e-5)
    # zero exactly at the timestep farthest from 500 (t = 1000, pure noise); largest next to 500
    assert s.timesteps[w.argmin()].item() == pytest.approx(1000.0)
    assert abs(s.timesteps[w.argmax()].item() - 500.0) < 1.0
    # w(t) is a shifted, scaled exp(-2 ((t - 500)/1000)^2): ratios of (w + c) follow the Gaussian
    t = torch.tensor([0.0, 250.0, 500.0, 750.0, 1000.0])
    wt = timestep_weights(t, 1000)
    g = torch.exp(-2 * ((t - 500) / 1000) ** 2)
    expected = (g - g.min()) / (g - g.min()).mean()
    torch.testing.assert_close(wt, expected)
    assert wt[1] == pytest.approx(wt[3].item())  # symmetric around 500


def test_sigmas_are_the_samplers_shift_over_1000_steps():
    sig = shifted_sigmas(1000, 5.0)
    torch.testing.assert_close(sig, reference_sigmas(1000, 5.0))  # same formula as inference
    assert sig[0].item() == 1.0 and 0 < sig[-1].item() < 0.01
    assert bool((sig[1:] < sig[:-1]).all())
    s = FlowMatchingSchedule(1000, 5.0)
    torch.testing.assert_close(s.timesteps, sig * 1000)


def test_sample_noise_and_target():
    s = FlowMatchingSchedule(1000, 5.0)
    a, b = s.sample(4, torch.Generator().manual_seed(3)), s.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(a.index, b.index) and a.timestep.shape == (4,)
    torch.testing.assert_close(a.sigma, s.sigmas[a.index])
    torch.testing.assert_close(a.weight, s.weights[a.index])
    x0, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    sigma = torch.tensor([0.0, 1.0])
    xt = s.add_noise(x0, eps, sigma)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[1], eps[1])
    torch.testing.assert_close(s.target(x0, eps), eps - x0)


def test_no_weighting_and_bad_settings():
    assert torch.equal(FlowMatchingSchedule(10, 5.0, "none").weights, torch.ones(10))
    with pytest.raises(InputError, match="module.flow.weighting"):
        FlowMatchingSchedule(1000, 5.0, "uniform")
    with pytest.raises(InputError, match="module.flow.shift"):
        FlowMatchingSchedule(1000, 0.0)
    with pytest.raises(InputError, match="num_train_timesteps"):
        FlowMatchingSchedule(1)
