"""Depth backends: every one returns depth on the EX-4D scale (see ``ex4d.depth.base``).

Model backends load their weights lazily, on the first call, so constructing any backend is cheap
and needs neither weights nor network.
"""

from ex4d.depth.base import EX4D_NEAR, DepthBackend, DepthResult, disparity_to_ex4d_depth, validate_depth
from ex4d.depth.constant import ConstantDepthBackend, PlanesDepthBackend
from ex4d.depth.depth_anything import DepthAnythingBackend
from ex4d.depth.depthcrafter import DepthCrafterBackend
from ex4d.depth.file import FileDepthBackend
from ex4d.depth.ground_truth import GroundTruthDepthBackend

__all__ = [
    "EX4D_NEAR",
    "ConstantDepthBackend",
    "DepthAnythingBackend",
    "DepthBackend",
    "DepthCrafterBackend",
    "DepthResult",
    "FileDepthBackend",
    "GroundTruthDepthBackend",
    "PlanesDepthBackend",
    "disparity_to_ex4d_depth",
    "validate_depth",
]
