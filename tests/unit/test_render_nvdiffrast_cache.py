"""The nvdiffrast renderer's topology-hash cache, without a GPU (a stand-in for nvdiffrast's module).

The runners render under ``torch.inference_mode``, whose tensors carry no version counter; the cache once
read ``tri._version`` and crashed every GPU run of ``python infer.py`` there.
"""

import torch

from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer


class _CountingDR:
    """Records how often the (expensive) topology hash is built."""

    def __init__(self):
        self.builds = 0

    def antialias_construct_topology_hash(self, tri):
        self.builds += 1
        return ("hash", self.builds)


def test_topology_hash_is_reused_by_value_under_inference_mode():
    r, dr = NvdiffrastRenderer(device="cpu"), _CountingDR()
    with torch.inference_mode():
        tri = torch.arange(12, dtype=torch.int32).reshape(4, 3)
        h1 = r._topology_hash(dr, tri)
        h2 = r._topology_hash(dr, tri.clone())  # equal faces, another tensor: reused
        assert h1 == h2 and dr.builds == 1
        tri[0, 0] = 7  # changed in place (no version counter here): rebuilt
        h3 = r._topology_hash(dr, tri)
        assert dr.builds == 2 and h3 != h1
        h4 = r._topology_hash(dr, torch.arange(9, dtype=torch.int32).reshape(3, 3))  # another size
        assert dr.builds == 3 and h4 != h3


def test_topology_hash_outside_inference_mode_too():
    r, dr = NvdiffrastRenderer(device="cpu"), _CountingDR()
    tri = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    assert r._topology_hash(dr, tri) == r._topology_hash(dr, tri) and dr.builds == 1
