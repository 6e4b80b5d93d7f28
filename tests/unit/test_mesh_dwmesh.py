"""DW-Mesh construction: topology, occlusion labels, modes (ex4d.mesh.dwmesh)."""

from __future__ import annotations

import math

import pytest
import torch

from ex4d.cameras import intrinsics
from ex4d.mesh import DWMeshBuilder, build_dwmesh, face_min_angle_deg, grid_faces
from ex4d.mesh.dwmesh import _grid_bad_vertices
from ex4d.utils.errors import InputError


def _rgb(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("h,w", [(2, 2), (3, 5), (17, 31), (64, 48)])
def test_face_count_and_topology(h, w):
    mesh = build_dwmesh(_rgb(2, h, w), torch.full((2, h, w), 3.0), intrinsics(h, w))
    F = 2 * (h - 1) * (w - 1) + 2
    assert mesh.faces.shape == (F, 3) and mesh.faces.dtype == torch.int32
    assert mesh.vertices.shape == (2, h * w, 3) and mesh.colors.shape == (2, h * w, 4)
    assert mesh.face_valid.shape == (2, F) and mesh.face_keep is None
    p = lambda v, u: v * w + u  # noqa: E731
    q = (h - 1) * (w - 1)
    assert mesh.faces[0].tolist() == [p(1, 0), p(0, 0), p(0, 1)]  # T1 of quad (0, 0)
    assert mesh.faces[q].tolist() == [p(1, 0), p(0, 1), p(1, 1)]  # T2 of quad (0, 0)
    assert mesh.faces[-2].tolist() == [p(0, w - 1), p(0, 0), p(h - 1, w - 1)]
    assert mesh.faces[-1].tolist() == [p(h - 1, w - 1), p(0, 0), p(h - 1, 0)]
    # Every undirected interior edge is shared by exactly two grid faces (a closed sheet).
    e = torch.cat([mesh.faces[:-2, [0, 1]], mesh.faces[:-2, [1, 2]], mesh.faces[:-2, [2, 0]]]).sort(dim=1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    assert int((counts == 2).sum()) == (h - 1) * (w - 2) + (h - 2) * (w - 1) + q  # horizontal + vertical + diagonal


def _step_depth(h: int, w: int, jump: float, horizontal: bool = False) -> torch.Tensor:
    d = torch.full((1, h, w), 4.0)
    if horizontal:
        d[:, h // 2 :, :] *= 1.0 + jump
    else:
        d[:, :, w // 2 :] *= 1.0 + jump
    return d


@pytest.mark.parametrize("horizontal", [False, True])
def test_occlusion_labels_threshold(horizontal):
    """f = 500 px: a jump r between neighbours gives a sliver of min angle ~atan(1 / (r f)): 2.5 deg at r ~4.6%.

    A 5.5% step is a wall (exactly the two faces of each quad straddling it), a 3% step is not; besides,
    only the skirt from the image to the border ring (pushed to z = 100) and the cap are walls.
    """
    h, w = 24, 32
    K = intrinsics(h, w)
    q = (h - 1) * (w - 1)
    ring = torch.zeros(h, w, dtype=torch.bool)
    ring[[0, -1], :] = True
    ring[:, [0, -1]] = True
    in_ring = ring.reshape(-1)[grid_faces(h, w).long()]
    touches_ring = in_ring.any(dim=1)
    skirt = touches_ring & ~in_ring.all(dim=1)  # from the ring at z = 100 to the image (corner faces are planar)
    # Quads straddling the step: (v, w/2 - 1) for a vertical step, (h/2 - 1, u) for a horizontal one.
    straddle = torch.zeros(h - 1, w - 1, dtype=torch.bool)
    if horizontal:
        straddle[h // 2 - 1, :] = True
    else:
        straddle[:, w // 2 - 1] = True
    expected_walls = torch.cat([straddle.reshape(-1), straddle.reshape(-1), torch.ones(2, dtype=torch.bool)])
    for jump, is_wall in [(0.055, True), (0.03, False)]:
        mesh = build_dwmesh(_rgb(1, h, w), _step_depth(h, w, jump, horizontal), K)
        walls = ~mesh.face_valid[0]
        interior = ~touches_ring
        interior[-2:] = False
        if is_wall:
            assert torch.equal(walls[interior], expected_walls[interior])
        else:
            assert not walls[interior].any()
        assert walls[skirt].all()  # border ring at z = 100: the skirt is all walls
        assert walls[-2:].all()  # fixed mode: the cap is a wall
    # The angle itself: at the image centre the sliver angle is atan(1 / (r f)) to within ~0.1 deg.
    for jump in (0.03, 0.046, 0.055):
        mesh = build_dwmesh(_rgb(1, h, w), _step_depth(h, w, jump), K, mode="fixed")
        ang = face_min_angle_deg(mesh.vertices, mesh.faces)[0, : 2 * q].reshape(2, h - 1, w - 1)
        got = float(ang[:, h // 2, w // 2 - 1].min())
        assert got == pytest.approx(math.degrees(math.atan(1.0 / (jump * 500.0))), abs=0.1)


def test_bad_vertices_equal_scatter_of_invalid_faces():
    """The shifted-OR dilation gives exactly the vertices touched by an invalid face (incl. the cap)."""
    g = torch.Generator().manual_seed(1)
    for h, w in [(2, 2), (5, 7), (23, 17)]:
        faces = grid_faces(h, w).long()
        for _ in range(3):
            valid = torch.rand(3, faces.shape[0], generator=g) > 0.2
            count = torch.zeros(3, h * w, dtype=torch.int32)
            for k in range(3):
                count.scatter_add_(1, faces[:, k].expand(3, -1), (~valid).int())
            assert torch.equal(_grid_bad_vertices(valid, h, w), count > 0)


def test_colors_and_modes():
    h, w = 12, 16
    d = _step_depth(h, w, 0.2)
    rgb = _rgb(1, h, w)
    K = intrinsics(h, w)
    fixed, parity, torn = (build_dwmesh(rgb, d, K, mode=m) for m in ("fixed", "parity", "torn"))
    # Colours: source rgb with alpha 1, RGBA = 0 exactly on vertices of invalid faces.
    bad = torch.zeros(h * w, dtype=torch.bool)
    bad[fixed.faces[~fixed.face_valid[0]].long().reshape(-1)] = True
    assert (fixed.colors[0, bad] == 0).all()
    assert torch.equal(fixed.colors[0, ~bad, :3], rgb.reshape(-1, 3)[~bad].float() / 255.0)
    assert (fixed.colors[0, ~bad, 3] == 1).all()
    # Every vertex of an invalid face has RGBA 0 (the invariant renderers rely on).
    assert (fixed.colors[0][fixed.faces[~fixed.face_valid[0]].long()] == 0).all()
    # torn (the reference's use_dwmesh=0): same geometry and angle labels as fixed, but the cap is labelled by
    # the angle rule (kept), invalid faces are deleted and every vertex keeps its colour with alpha 1.
    assert torch.equal(torn.vertices, fixed.vertices)
    assert torch.equal(torn.face_valid[:, :-2], fixed.face_valid[:, :-2]) and torn.face_valid[0, -2:].all()
    assert torch.equal(torn.face_keep, torn.face_valid)
    assert torch.equal(torn.colors[0, :, :3], rgb.reshape(-1, 3).float() / 255.0) and (torn.colors[..., 3] == 1).all()
    assert torn.faces_of(0).shape[0] == int(torn.face_valid.sum())
    assert torn.mode == "torn" and fixed.mode == "fixed" and parity.mode == "parity"
    # parity: vertices on integer pixel coordinates = fixed shifted by half a pixel (at each depth).
    z = fixed.vertices[0, :, 2:]
    assert torch.allclose(parity.vertices[0, :, :2], fixed.vertices[0, :, :2] - 0.5 * z / 500.0, atol=1e-5)
    # torn on the reference's integer-pixel geometry is its use_dwmesh=0 mesh face for face: parity's vertices,
    # the faces parity labels valid, untouched colours.
    ref_torn = build_dwmesh(rgb, d, K, mode="torn", pixel_center=False)
    assert torch.equal(ref_torn.vertices, parity.vertices) and torch.equal(ref_torn.face_keep, parity.face_valid)
    assert torch.equal(ref_torn.colors, torn.colors)
    assert DWMeshBuilder("torn", pixel_center=False).pixel_center is False and DWMeshBuilder("parity").pixel_center is False
    assert torch.equal(DWMeshBuilder("torn", pixel_center=False)(rgb, d, K).vertices, parity.vertices)


def test_torn_keeps_the_cap_and_deletes_only_slivers_hand_checked():
    """A 5 x 6 plane at z = 2 whose one-pixel border ring is pushed to z = 100 (hand-countable).

    Slivers are exactly the faces joining a ring vertex (z = 100) to an interior one (z = 2). What stays:
    the 6 interior quads (12 faces), the two all-ring corner triangles (planar at z = 100: T1 of quad (0, 0),
    T2 of quad (3, 4)) and both cap faces: 16 of 42. Every vertex keeps alpha 1 (the reference blanks none).
    """
    h, w = 5, 6
    q = (h - 1) * (w - 1)  # 20 quads; T1 of quad (v, u) is face v (w-1) + u, T2 is q + v (w-1) + u
    mesh = build_dwmesh(_rgb(1, h, w), torch.full((1, h, w), 2.0), intrinsics(h, w), mode="torn")
    interior_quads = [v * (w - 1) + u for v in (1, 2) for u in (1, 2, 3)]
    expected = sorted(interior_quads + [q + i for i in interior_quads] + [0, q + 3 * (w - 1) + 4, 2 * q, 2 * q + 1])
    assert torch.nonzero(mesh.face_keep[0]).flatten().tolist() == expected
    assert (mesh.colors[0, :, 3] == 1).all()
    fixed = build_dwmesh(_rgb(1, h, w), torch.full((1, h, w), 2.0), intrinsics(h, w), mode="fixed")
    assert fixed.face_keep is None and not fixed.face_valid[0, -2:].any()  # DW-Mesh: kept as walls, cap too
    assert int(fixed.face_valid[0].sum()) == 16 - 2


def test_parity_cap_keeps_two_corners():
    """Reference quirk: in parity mode the cap is labelled by angle only (valid), and its corners (0, 0)
    and (H-1, W-1) touch only border-ring faces (planar at z = 100), so they keep alpha; the other two
    corners touch skirt slivers and lose it. fixed: the cap is a wall, every corner loses alpha. torn (the
    reference's use_dwmesh=0): the cap is kept and no vertex loses alpha."""
    h, w = 10, 14
    d = torch.full((1, h, w), 3.0)
    corners = [0, w - 1, (h - 1) * w, h * w - 1]
    parity = build_dwmesh(_rgb(1, h, w), d, intrinsics(h, w), mode="parity")
    assert parity.face_valid[0, -2:].all()
    assert parity.colors[0, corners, 3].tolist() == [1.0, 0.0, 0.0, 1.0]
    fixed = build_dwmesh(_rgb(1, h, w), d, intrinsics(h, w), mode="fixed")
    assert not fixed.face_valid[0, -2:].any()
    assert fixed.colors[0, corners, 3].tolist() == [0.0, 0.0, 0.0, 0.0]
    torn = build_dwmesh(_rgb(1, h, w), d, intrinsics(h, w), mode="torn")
    assert torn.face_keep[0, -2:].all() and torn.colors[0, corners, 3].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_frames_are_independent_and_builder_matches():
    h, w = 9, 11
    d = torch.stack([_step_depth(h, w, 0.2)[0], _step_depth(h, w, 0.01)[0], _step_depth(h, w, 0.2, True)[0]])
    rgb = _rgb(3, h, w)
    K = intrinsics(h, w)
    batch = build_dwmesh(rgb, d, K)
    for i in range(3):
        one = build_dwmesh(rgb[i : i + 1], d[i : i + 1], K)
        assert torch.equal(one.vertices, batch.vertices[i : i + 1]) and torch.equal(one.colors, batch.colors[i : i + 1])
        assert torch.equal(one.face_valid, batch.face_valid[i : i + 1])
    via_builder = DWMeshBuilder("fixed")(rgb, d, K)
    assert torch.equal(via_builder.colors, batch.colors)
    with pytest.raises(InputError, match="mesh.mode"):
        build_dwmesh(rgb, d, K, mode="nope")
    with pytest.raises(InputError, match="mesh.pixel_center"):
        DWMeshBuilder("torn", pixel_center="yes")
