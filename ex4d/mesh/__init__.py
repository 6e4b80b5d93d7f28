"""DW-Mesh construction and export."""

from ex4d.mesh.dwmesh import (
    BORDER_DEPTH,
    MESH_MODES,
    DWMesh,
    DWMeshBuilder,
    build_dwmesh,
    face_min_angle_deg,
    grid_faces,
)

__all__ = ["BORDER_DEPTH", "MESH_MODES", "DWMesh", "DWMeshBuilder", "build_dwmesh", "face_min_angle_deg", "grid_faces"]
