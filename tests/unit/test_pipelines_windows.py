"""Long clips in overlapping windows (ex4d.pipelines.windows): the plan, the carried conditioning, the
crossfade, and the tiny Wan end to end (TEST ONLY model: its output is noise; we test the plumbing)."""

from __future__ import annotations

import pytest
import torch

from ex4d.pipelines.windows import WindowSettings, crossfade_weights, generate_windowed, plan_windows
from ex4d.utils.errors import InputError
from tests.conftest import masked_video


def test_plan():
    assert plan_windows(13, WindowSettings(5, 2)) == [(0, 5), (3, 8), (5, 10), (8, 13)]
    assert plan_windows(97, WindowSettings()) == [(0, 49), (24, 73), (48, 97)]
    assert plan_windows(90, WindowSettings()) == [(0, 49), (41, 90)]  # tiles exactly: overlap 8
    assert plan_windows(49, WindowSettings()) == [(0, 49)] and plan_windows(25, WindowSettings()) == [(0, 25)]
    for F, O in ((5, 1), (5, 2), (9, 4), (49, 8), (49, 48)):
        for T in range(F + 1, 4 * F + 7):
            w = plan_windows(T, WindowSettings(F, O))
            assert w[0][0] == 0 and w[-1][1] == T and all(b - a == F for a, b in w)
            overlaps = [prev[1] - nxt[0] for prev, nxt in zip(w, w[1:])]
            assert min(overlaps) >= O and all(n[0] > p[0] for p, n in zip(w, w[1:])), (T, F, O, w)
            assert len(w) == -(-(T - O) // (F - O))  # no more windows than the overlap needs


@pytest.mark.parametrize("kw,key", [
    ({"frames": 5, "overlap": 5}, "windows.overlap"), ({"frames": 5, "overlap": 7}, "windows.overlap"),
    ({"frames": 5, "overlap": 0}, "windows.overlap"), ({"frames": 48}, "windows.frames"),
    ({"frames": 1}, "windows.frames"), ({"frames": "49"}, "windows.frames"),
])
def test_bad_settings_name_the_key(kw, key):
    with pytest.raises(InputError, match=key):
        WindowSettings(**kw)


class Recorder:
    """Wraps a generator; keeps every call's inputs and output."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, colour, mask, first=None, **kw):
        out = self.fn(colour, mask, first, **kw)
        self.calls.append((torch.as_tensor(colour).clone(), torch.as_tensor(mask).clone(),
                           None if first is None else torch.as_tensor(first).clone(), torch.as_tensor(out).clone()))
        return out


def _check_chain(rec: Recorder, out, colour, mask, first, windows):
    """Every window after the first was conditioned on what was generated; overlaps are crossfaded."""
    assert len(rec.calls) == len(windows)
    c0, m0, f0, y0 = rec.calls[0]
    assert torch.equal(c0, torch.as_tensor(colour[:windows[0][1]])) and torch.equal(m0, torch.as_tensor(mask[:windows[0][1]]))
    assert torch.equal(f0, torch.as_tensor(first))
    expected = torch.zeros_like(out)
    expected[: windows[0][1]] = y0
    done = windows[0][1]
    for (start, stop), (c, m, f, y) in zip(windows[1:], rec.calls[1:]):
        ov = done - start
        assert torch.equal(c[:ov], expected[start:done]) and m[:ov].all()  # generated frames, trusted
        assert torch.equal(c[ov:], torch.as_tensor(colour[done:stop])) and torch.equal(m[ov:], torch.as_tensor(mask[done:stop]))
        assert torch.equal(f, expected[start])  # I2V first frame: the generated frame at the window start
        w = crossfade_weights(ov)[:, None, None, None]
        expected[start:done] = ((1 - w) * expected[start:done].float() + w * y[:ov].float()).round().to(torch.uint8)
        expected[done:stop] = y[ov:]
        done = stop
    assert torch.equal(out, expected)


def test_chain_with_a_stand_in_generator():
    """A generator that shifts the colours by its call count: each output frame is traceable to its window."""
    T, H, W = 13, 4, 6
    colour, mask = masked_video(T, H, W)
    first = colour[0].copy()
    calls = []

    def fake(c, m, f=None, **kw):
        calls.append(kw)
        return (torch.as_tensor(c).int() + 40 * len(calls)).clamp(0, 255).to(torch.uint8)

    rec = Recorder(fake)
    settings = WindowSettings(5, 2)
    out = generate_windowed(rec, colour, mask, first, settings, seed=7)
    assert out.shape == (T, H, W, 3) and out.dtype == torch.uint8
    _check_chain(rec, out, colour, mask, first, plan_windows(T, settings))
    assert calls == [{"seed": 7}] * 4  # call arguments reach every window
    assert crossfade_weights(3).tolist() == pytest.approx([0.25, 0.5, 0.75])


@pytest.fixture(scope="module")
def tiny():
    from ex4d.model.adapter import LoraSettings, build_ex4d_transformer
    from ex4d.model.wan import build_tiny_wan
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a non-zero adapter, so the render reaches the output
        for p in m.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return EX4DGenerator(c, m, GenerateSettings(num_steps=2, progress=False), device="cpu")


def test_tiny_model_13_frames_in_windows_of_5(tiny):
    colour, mask = masked_video(13, 32, 32)
    rec = Recorder(tiny)
    settings = WindowSettings(frames=5, overlap=2)
    out = generate_windowed(rec, colour, mask, colour[0], settings)
    assert out.shape == (13, 32, 32, 3) and out.dtype == torch.uint8
    _check_chain(rec, out, colour, mask, colour[0], plan_windows(13, settings))
    # the overlap frames are blends of two different samples, not either one
    y0, y1 = rec.calls[0][3], rec.calls[1][3]
    assert not torch.equal(out[3], y0[3]) and not torch.equal(out[3], y1[0])


def test_tiny_model_one_window_is_the_plain_call_bit_for_bit(tiny):
    colour, mask = masked_video(5, 32, 32, seed=3)
    plain = tiny(colour, mask, colour[0])
    for settings in (WindowSettings(frames=5, overlap=2), WindowSettings(frames=9, overlap=4), WindowSettings()):
        assert torch.equal(generate_windowed(tiny, colour, mask, colour[0], settings), plain)
