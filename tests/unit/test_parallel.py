"""Context-parallel settings and checks (the multi-process runs are in tests/integration/test_parallel_gloo.py)."""

from __future__ import annotations

import pytest

from ex4d.pipelines.parallel import (
    DistEnv,
    ParallelSettings,
    check_context_parallel,
    check_sequence_split,
    init_distributed,
)
from ex4d.utils.errors import InputError


def test_settings_reject_unknown_mode_and_bad_degree():
    with pytest.raises(InputError, match="parallel.context"):
        ParallelSettings(context="tensor")
    with pytest.raises(InputError, match="parallel.degree"):
        ParallelSettings(context="ulysses", degree=0)
    assert not ParallelSettings().enabled and ParallelSettings(context="ring").enabled


def test_degree_defaults_to_world_size_and_must_match_it():
    assert check_context_parallel(ParallelSettings(context="ulysses"), world_size=4, num_heads=40) == 4
    assert check_context_parallel(ParallelSettings(), world_size=4, num_heads=40) == 1  # off
    with pytest.raises(InputError, match="must equal the number of processes"):
        check_context_parallel(ParallelSettings(context="ulysses", degree=2), world_size=4, num_heads=40)


def test_single_process_launch_is_refused_with_the_launch_command():
    with pytest.raises(InputError, match="torchrun --nproc_per_node"):
        check_context_parallel(ParallelSettings(context="ring"), world_size=1, num_heads=40)


def test_ulysses_needs_heads_divisible_ring_does_not():
    for n in (2, 4, 5, 8):
        assert check_context_parallel(ParallelSettings(context="ulysses"), n, 40) == n
    with pytest.raises(InputError, match="40 attention heads over 3 ranks"):
        check_context_parallel(ParallelSettings(context="ulysses"), 3, 40)
    assert check_context_parallel(ParallelSettings(context="ring"), 3, 40) == 3


@pytest.mark.parametrize("tokens, degree, ok", [
    (13 * 32 * 32, 2, True), (13 * 32 * 32, 8, True),      # 512x512x49
    (21 * 30 * 52, 2, True), (21 * 30 * 52, 8, True),      # 480x832x81
    (21 * 30 * 52, 16, False), (13 * 32 * 32, 3, False),
    (7, 1, True),
])
def test_sequence_split(tokens, degree, ok):
    if ok:
        check_sequence_split(tokens, degree)
    else:
        with pytest.raises(InputError, match=f"{tokens} DiT tokens .* {degree} ranks"):
            check_sequence_split(tokens, degree)


def test_dist_env_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = DistEnv.from_env()
    assert (env.rank, env.world_size, env.local_rank, env.is_main) == (3, 4, 1, False)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(InputError, match="RANK"):
        DistEnv.from_env()


def test_multi_process_without_rendezvous_is_an_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(InputError, match="MASTER_ADDR"):
        init_distributed("cpu")


def test_generator_refuses_offload_with_context_parallel():
    from ex4d.model.adapter import LoraSettings, build_ex4d_transformer
    from ex4d.model.wan import build_tiny_wan
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    with pytest.raises(InputError, match="memory_mode=gpu"):
        EX4DGenerator(c, m, GenerateSettings(progress=False), device="cpu", memory_mode="offload",
                      parallel=ParallelSettings(context="ulysses"))
    with pytest.raises(InputError, match="first_block_cache"):
        EX4DGenerator(c, m, GenerateSettings(progress=False, first_block_cache=0.1), device="cpu",
                      parallel=ParallelSettings(context="ulysses"))


def test_infer_refuses_recon_only_and_sets_of_inputs(compose, tmp_path):
    from ex4d.runners.infer import run_infer

    base = ["model=wan_tiny", "checkpoint=null", "parallel.context=ulysses", f"+output_dir={tmp_path / 'r'}"]
    with pytest.raises(InputError, match="stage=recon has none"):
        run_infer(compose("infer", [*base, "stage=recon"]))
    missing = ["parallel.context=ulysses", f"paths.weights_dir={tmp_path}/none", f"+output_dir={tmp_path / 'm'}"]
    with pytest.raises(InputError, match="stage=auto found no generator weights"):
        run_infer(compose("infer", [*missing, "stage=auto"]))
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).write_bytes(b"")
    with pytest.raises(InputError, match="one video per launch"):
        run_infer(compose("infer", [*base, "stage=all", f"input={videos}"]))
