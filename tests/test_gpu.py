"""Checks that need a CUDA GPU (marked gpu, skipped elsewhere): run by bench/gpu_check.py, which starts
the host on the GPU (RERENDER_TEST_DEVICE=cuda)."""
from __future__ import annotations

import pytest
import torch

from harness.media import psnr, read_video, stylize
from harness.models import tiny_conditioning, tiny_controlnet, tiny_sd15, tiny_vae
from harness.rendering import CONSTRAINT_NODES, constrain, node_defaults
from harness.synthetic import shifted_clip

pytestmark = pytest.mark.gpu

# Propagation on the GPU draws other random candidates than on the CPU, so the results are compared by
# their quality against the ground truth, not pixel by pixel.
CPU_GPU_PSNR_TOLERANCE_DB = 0.5


def test_key_frames_with_all_constraints_on_a_cuda_fp16_unet_and_controlnet(host):
    model, vae = tiny_sd15(dtype=torch.float16), tiny_vae()
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=64, width=64)
    controls = frames.movedim(1, -1).flip(-1)
    positive, negative = host.call("ControlNetApplyAdvanced", positive=tiny_conditioning(1),
                                   negative=tiny_conditioning(2), control_net=tiny_controlnet(torch.float16),
                                   image=controls, strength=1.0, start_percent=0.0, end_percent=1.0)
    inputs = dict(node_defaults(host, "RerenderKeyframes"), model=constrain(host, model, vae, *CONSTRAINT_NODES),
                  positive=positive, negative=negative, vae=vae, key_frames=frames.movedim(1, -1), steps=4, cfg=3.0)
    images, latents = host.call("RerenderKeyframes", **inputs)
    assert model.load_device.type == "cuda"
    assert images.shape == (3, 64, 64, 3) and torch.isfinite(images).all()


def test_propagation_on_cuda_matches_the_cpu(pack, shared_data):
    video, flow_module, dis = pack.propagation.video, pack.flow.video_flow, pack.flow.dis
    frames = read_video(shared_data / "videos" / "wolf.mp4", limit=21)
    truth = stylize(frames)
    keys = [0, 10, 20]
    flow = flow_module.estimate_video_flow(frames, dis.DisFlow("medium"), "dis_medium")
    quality = {}
    for device, chains in (("cpu", 1), ("cuda", 4)):
        output = video.propagate_video(frames, keys, truth[keys], flow, video.PropagationSettings(chains_per_batch=chains),
                                       device=device)
        quality[device] = sum(psnr(output[j], truth[j]) for j in range(21) if j not in keys) / 18
    print(quality)
    assert abs(quality["cuda"] - quality["cpu"]) <= CPU_GPU_PSNR_TOLERANCE_DB


def test_synthesis_steps_never_wait_for_the_gpu(pack):
    chain, video = pack.propagation.chain, pack.propagation.video
    clip, _ = shifted_clip(frames=3, dx=1, dy=0, height=128, width=160, cell=8)
    flow = pack.flow.video_flow.estimate_video_flow(clip, pack.flow.dis.DisFlow("ultrafast"), "dis_ultrafast")
    frames = clip.cuda() * 255
    batch = chain.ChainBatch([chain.start_chain(frames[:1], 255 - frames[:1])])
    flows, occluded = flow.backward.cuda(), flow.occluded_backward.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")   # any host synchronisation raises
    try:
        for j in (1, 2):
            batch.advance(frames[j:j + 1], flows[j - 1:j], occluded[j - 1:j], video.PropagationSettings().synthesis,
                          video.PropagationSettings().warp_share)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_raft_on_cuda_matches_the_cpu(pack, raft_weights):
    model = pack.flow.raft.load_raft(raft_weights["raft-sintel.pth"])
    frames, _ = shifted_clip(frames=2, dx=3, dy=1, height=128, width=160, cell=8)
    on_cpu = pack.flow.raft.RaftFlow(model)(frames[:1], frames[1:])
    on_gpu = pack.flow.raft.RaftFlow(model.cuda())(frames[:1], frames[1:])
    assert (on_gpu - on_cpu).abs().mean() < 0.05
