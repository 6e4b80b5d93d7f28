"""Rendering masks (DW-Mesh round trip) and the pose sampler, on synthetic depth with known geometry."""

import pytest
import torch

from ex4d.cameras import camera_centers, intrinsics
from ex4d.masking import PoseSampler, RenderMask, render_mask_and_depth
from ex4d.mesh import DWMeshBuilder
from ex4d.utils.errors import InputError

H = W = 48


@pytest.fixture(scope="module")
def renderer():
    from ex4d.render.cpu_backend import CpuRenderer

    return CpuRenderer(num_threads=1)


def _scene(T=1, step=True):
    """Random texture; depth 10 wall with (step=True) a box at the EX-4D near depth in the middle.
    f = H px gives a 53 degree field of view, like f = 500 at 512 px."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=g)
    depth = torch.full((T, H, W), 10.0)
    if step:
        depth[:, 16:32, 16:32] = 10000.0 / 3900.0
    return frames, depth, intrinsics(H, W, focal_px=float(H))


def _masker(renderer, angle, schedule="constant", full_first_frame=False, **pose):
    poses = PoseSampler(angle_deg=angle, sign="positive", pitch_deg=pose.pop("pitch_deg", 0.0), schedule=schedule)
    return RenderMask(poses, renderer=renderer, full_first_frame=full_first_frame, **pose)


def test_identity_pose_loses_only_the_meshs_own_walls(renderer):
    frames, depth, K = _scene(step=True)
    mask = _masker(renderer, 0.0)(frames, depth, K, torch.Generator().manual_seed(0))
    # The source render of a DW-Mesh already blanks the vertices of wall faces; the round trip adds nothing.
    walls = DWMeshBuilder()(frames, depth, K).colors[0, :, 3].reshape(H, W) < 0.5
    assert torch.equal(~mask[0], walls)
    assert 0.1 < mask.float().mean() and mask[0, 3:-3, 3:15].all()


def test_identity_pose_on_a_plane_keeps_everything_but_the_border_ring(renderer):
    frames, depth, K = _scene(step=False)
    mask = _masker(renderer, 0.0)(frames, depth, K, torch.Generator().manual_seed(0))[0]
    ring = torch.ones(H, W, dtype=torch.bool)
    ring[2:-2, 2:-2] = False  # the skirt to z = 100: border pixel + its neighbour
    assert torch.equal(~mask, ring)


def test_hole_fraction_grows_with_the_angle(renderer):
    frames, depth, K = _scene(step=True)
    holes = [float((~_masker(renderer, a)(frames, depth, K, torch.Generator().manual_seed(0))).float().mean())
             for a in (0.0, 10.0, 30.0, 60.0)]
    assert holes[0] < holes[1] < holes[2] < holes[3], holes
    assert holes[1] - holes[0] > 0.02 and holes[3] < 1.0


def test_holes_are_the_wall_hidden_behind_the_box(renderer):
    # A camera moved to +x sees the box shifted against the wall: the wall just left of the box (in the
    # source image) falls behind it, while the wall further left and the box's face stay visible.
    frames, depth, K = _scene(step=True)
    # At 5 degrees the hidden strip is about 5 px wide (cols 12-16; the box spans cols 16-31).
    mask = _masker(renderer, 5.0)(frames, depth, K, torch.Generator().manual_seed(0))[0]
    beside_box, far_left, box = mask[18:30, 13:16], mask[18:30, 3:10], mask[19:29, 19:29]
    assert (~beside_box).float().mean() > 0.9
    assert far_left.float().mean() > 0.9 and box.all()


def test_torn_round_trip_trusts_what_the_box_hides(renderer):
    """mesh=torn (the reference's use_dwmesh=0, the "no DW-Mesh" ablation): the wall strip hidden behind the box
    in the novel view comes back *trusted* (rays through the tear hit the cap), where DW-Mesh makes it a hole;
    only what the novel view does not cover at all (its right edge here) stays a hole."""
    frames, depth, K = _scene(step=True)
    masks = {}
    for mode in ("fixed", "torn"):
        sample = _masker(renderer, 5.0, mesh=DWMeshBuilder(mode)).sample(frames, depth, K, torch.Generator().manual_seed(0))
        assert sample.info["mesh"] == mode  # stored with every shard (train.py checks data.mask_mesh against it)
        masks[mode] = sample.mask[0]
    beside_box = (slice(18, 30), slice(13, 16))
    assert (~masks["fixed"][beside_box]).float().mean() > 0.9 and masks["torn"][beside_box].all()
    assert masks["torn"][3:-3, :40].all()  # every hole of the torn mask is out of the novel view (right edge)
    assert (~masks["torn"]).float().mean() < 0.5 * (~masks["fixed"]).float().mean()


def test_linear_schedule_starts_at_the_source_and_grows(renderer):
    frames, depth, K = _scene(T=3, step=True)
    m = _masker(renderer, 40.0, schedule="linear", full_first_frame=True)
    out = m.sample(frames, depth, K, torch.Generator().manual_seed(0))
    holes = (~out.mask).float().mean((1, 2))
    assert out.mask[0].all() and 0 < holes[1] < holes[2]
    assert out.info["strategy"] == "render" and out.info["yaw_deg"] == pytest.approx(40.0)


def test_seeded_masks_are_identical(renderer):
    frames, depth, K = _scene(T=2, step=True)
    m = RenderMask(PoseSampler(angle_deg=(5, 60)), renderer=renderer)
    a = m.sample(frames, depth, K, torch.Generator().manual_seed(7))
    b = m.sample(frames, depth, K, torch.Generator().manual_seed(7))
    c = m.sample(frames, depth, K, torch.Generator().manual_seed(8))
    assert torch.equal(a.mask, b.mask) and a.info == b.info and a.info["yaw_deg"] != c.info["yaw_deg"]


def test_rendered_depth_is_the_camera_z(renderer):
    frames, depth, K = _scene(step=False)
    mesh = DWMeshBuilder()(frames, depth, K)
    w2c = torch.eye(4, dtype=torch.float64)[None].clone()
    w2c[0, 2, 3] = -1.0  # camera 1 unit forward: the plane at z = 10 is at camera z = 9
    mask, z, covered = render_mask_and_depth(renderer, mesh, w2c, K, H, W)
    assert covered.all()
    torch.testing.assert_close(z[0][mask[0]], torch.full_like(z[0][mask[0]], 9.0), atol=1e-3, rtol=0)


def test_pose_sampler_conventions_and_ranges():
    g = torch.Generator().manual_seed(0)
    ident = PoseSampler(angle_deg=0, pitch_deg=0, schedule="constant").sample(3, 2.5, g)
    torch.testing.assert_close(ident.w2c, torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    right = PoseSampler(angle_deg=30, sign="positive", pitch_deg=10).sample(5, 2.5, g)
    c = camera_centers(right.w2c)
    assert torch.allclose(c[0], torch.zeros(3, dtype=torch.float64), atol=1e-12)  # linear: frame 0 = source
    assert c[-1, 0] > 0 and c[-1, 1] < 0  # to +x, raised (OpenCV y down)
    assert PoseSampler(angle_deg=30, sign="negative").sample(2, 2.5, g).yaw_deg == -30
    yaws = [PoseSampler(angle_deg=(20, 40)).sample(2, 2.5, g).yaw_deg for _ in range(50)]
    assert all(20 <= abs(y) <= 40 for y in yaws) and min(yaws) < 0 < max(yaws)
    # Every pose looks at the pivot: it projects to the image centre line (camera x = y = 0).
    p = right.w2c[-1, :3, :3] @ right.pivot + right.w2c[-1, :3, 3]
    assert abs(p[0]) < 1e-9 and abs(p[1]) < 1e-9 and right.pivot[2] == pytest.approx(2.65)


@pytest.mark.parametrize("kw,key", [({"angle_deg": [40, 10]}, "angle_deg"), ({"sign": "both"}, "sign"),
                                    ({"pitch_deg": 95}, "pitch_deg"), ({"schedule": "ramp"}, "schedule")])
def test_bad_pose_knobs_name_the_key(kw, key):
    with pytest.raises(InputError, match=f"masking.poses.{key}"):
        PoseSampler(**kw)
