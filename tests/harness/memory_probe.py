"""Measures peak working memory of propagation in a process of its own (run by the tests and bench).

    python tests/harness/memory_probe.py clip FRAMES HEIGHT WIDTH   # propagate_video over a panning clip
    python tests/harness/memory_probe.py chain HEIGHT WIDTH         # one chain advancing three frames

Prints the peak resident growth beyond inputs and output, in bytes, on its last line. Run it with
``PROBE_ENV`` in the environment: a fixed glibc mmap threshold makes freed tensors leave resident
memory at once, so the peak follows what is alive instead of the allocator's history.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def command(*args) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *map(str, args)]


def main(argv: list[str]) -> None:
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
    from _pack import plain
    from harness import memory
    from harness.synthetic import shifted_clip

    video, video_flow, dis = plain("propagation.video"), plain("flow.video_flow"), plain("flow.dis")
    if argv[0] == "clip":
        count, height, width = map(int, argv[1:4])
        clip, _ = shifted_clip(frames=count, dx=1, dy=0, height=height, width=width, cell=8)
        flow = video_flow.estimate_video_flow(clip, dis.DisFlow("ultrafast"), "dis_ultrafast")
        keys = list(range(0, count, 10)) + ([count - 1] if (count - 1) % 10 else [])
        styles = 1 - clip[keys]
        output, growth = memory.peak_growth(lambda: video.propagate_video(clip, keys, styles, flow))
        assert output.shape == clip.shape
        print(growth - output.numel() * output.element_size())
    elif argv[0] == "chain":
        chain = plain("propagation.chain")
        height, width = map(int, argv[1:3])
        clip, _ = shifted_clip(frames=4, dx=1, dy=0, height=height, width=width, cell=8)
        flow = video_flow.estimate_video_flow(clip, dis.DisFlow("ultrafast"), "dis_ultrafast")
        frames = clip * 255

        def run():
            batch = chain.ChainBatch([chain.start_chain(frames[:1], 255 - frames[:1])])
            for j in range(1, 4):
                batch.advance(frames[j:j + 1], flow.backward[j - 1:j], flow.occluded_backward[j - 1:j],
                              video.PropagationSettings().synthesis, video.PropagationSettings().warp_share)
            return batch

        run()   # the first call also loads kernels and thread pools, which are no chain's memory
        _, growth = memory.peak_growth(run)
        print(growth)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
