"""ex4d.utils.checks and resolve_device: single values checked with the key in the message."""

from __future__ import annotations

import pytest
import torch

from ex4d.utils.checks import check_bool, check_choice, check_int, check_memory, check_number, format_bytes
from ex4d.utils.device import resolve_device
from ex4d.utils.errors import InputError


@pytest.mark.parametrize("check,value", [
    (lambda v: check_int(v, "k.n", minimum=1), 0),
    (lambda v: check_int(v, "k.n", minimum=1), 2.5),
    (lambda v: check_int(v, "k.n", minimum=1), "3"),
    (lambda v: check_int(v, "k.n", minimum=1), True),
    (lambda v: check_int(v, "k.n", minimum=1), float("inf")),
    (lambda v: check_int(v, "k.n", maximum=4), 5),
    (lambda v: check_number(v, "k.n", positive=True), 0.0),
    (lambda v: check_number(v, "k.n"), float("nan")),
    (lambda v: check_number(v, "k.n"), "1e3"),
    (lambda v: check_number(v, "k.n", minimum=0.0), -1e-9),
    (lambda v: check_bool(v, "k.n"), "true"),
    (lambda v: check_bool(v, "k.n"), 1),
    (lambda v: check_choice(v, "k.n", ("a", "b")), "c"),
])
def test_bad_values_name_the_key(check, value):
    with pytest.raises(InputError, match=r"^k\.n must be") as e:
        check(value)
    assert repr(value) in str(e.value)


def test_good_values_come_back_clean():
    assert check_int(49.0, "k") == 49 and isinstance(check_int(49.0, "k"), int)
    assert check_number(3, "k", positive=True) == 3.0
    assert check_bool(False, "k") is False and check_choice("a", "k", ("a",)) == "a"


def test_memory_check_names_the_request_and_the_fix():
    check_memory(2**20, "small", "fix", limit_bytes=2**21)
    with pytest.raises(InputError, match=r"^data.max_side=9: big needs about 2 GiB of memory, more than this machine's 1 "
                                         r"GiB; lower data.max_side$"):
        check_memory(2**31, "data.max_side=9: big", "lower data.max_side", limit_bytes=2**30)
    assert format_bytes(1.5 * 2**40) == "1.5 TiB" and format_bytes(12) == "12 B"


@pytest.mark.parametrize("device,match", [("gpu0", "device must be auto, cpu, cuda"), (3.5, "device must be"),
                                          ("cuda:99", "cuda:99")])
def test_bad_devices_name_the_key(device, match):
    if device == "cuda:99" and not torch.cuda.is_available():
        match = "no CUDA device is available"
    with pytest.raises(InputError, match=match):
        resolve_device(device, "device")
    assert resolve_device("cpu") == torch.device("cpu")


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    from ex4d.utils.files import atomic_path

    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the block ends
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
