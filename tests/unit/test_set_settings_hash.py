"""A set folder refuses a resume with other generation settings, but not with options that leave every pixel
as it was (where caches live, what is streamed or pinned, the progress bar)."""

import dataclasses

import pytest

from ex4d.runners.common import settings_hash
from ex4d.runners.stages import BIT_EXACT_GENERATE_KEYS, generation_settings


def _hash(compose, *overrides):
    return settings_hash(generation_settings(compose("infer", list(overrides))))


@pytest.mark.parametrize("override", [
    "generate.compile_cache=null", "generate.text_cache=/tmp/elsewhere",
    "generate.stream_text_encoder=true", "generate.pin_memory=false", "generate.cache_embeddings=false",
    "+generate.progress=false", "model.memory_mode=low_vram",
])
def test_bit_exact_options_keep_the_hash(compose, override):
    assert _hash(compose, override) == _hash(compose)


@pytest.mark.parametrize("override", [
    "generate.num_steps=3", "generate.fuse_lora=true", "generate.compile_blocks=true", "generate.levers=off",
    "generate.fp8_linears=rowwise", "generate.seed=1",
])
def test_options_that_change_the_numbers_change_the_hash(compose, override):
    assert _hash(compose, override) != _hash(compose)


def test_every_exempt_key_is_a_generate_setting():
    from ex4d.pipelines.generate import GenerateSettings

    assert set(BIT_EXACT_GENERATE_KEYS) <= {f.name for f in dataclasses.fields(GenerateSettings)}
