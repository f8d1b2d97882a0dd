"""RerenderLoadVideo and RerenderSaveVideo: options, codecs, and bad input."""
from __future__ import annotations

import os
import stat

import cv2
import numpy as np
import pytest
import torch

from harness.media import video_facts
from harness.video_nodes import force_backend, load_video, save_video, saved_path


def write_clip(path, frames=12, width=160, height=120, fps=20.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(frames):
        image = np.full((height, width, 3), 20 * i % 255, np.uint8)
        cv2.putText(image, str(i), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        writer.write(image)
    writer.release()
    return path


load, save = load_video, save_video


@pytest.mark.parametrize("size, short_side, expected", [
    ((960, 720), 512, (704, 512)),    # the reference's woman clip before its long-side regression
    ((540, 680), 512, (512, 640)),    # van_gogh_man after its crop
    ((780, 506), 512, (768, 512)),    # real2sculpture after its crop
    ((64, 48), 0, (64, 48)),          # 0 keeps the size
])
def test_resize_follows_the_papers_short_side_rule(pack, size, short_side, expected):
    assert pack.video.io.fit_size(*size, short_side) == expected


def test_load_video_options(host, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    frames, count, fps, _ = load(host, path=str(clip), short_side=64)
    assert frames.shape == (12, 64, 64, 3) and count == 12 and fps == pytest.approx(20.0)
    frames, count, fps, _ = load(host, path=str(clip), short_side=0, skip_first_frames=2, select_every_nth=3,
                              frame_load_cap=3, crop_left=10, crop_right=30, crop_top=0, crop_bottom=8)
    assert frames.shape == (3, 112, 120, 3) and count == 3 and fps == pytest.approx(20.0 / 3)


def test_load_video_from_the_input_folder(host):
    input_dir = host.folder_paths().get_input_directory()
    write_clip(os.path.join(input_dir, "uploaded.mp4"), frames=4)
    spec = host.nodes.NODE_CLASS_MAPPINGS["RerenderLoadVideo"].INPUT_TYPES()["required"]["video"]
    assert "uploaded.mp4" in spec[0] and spec[1]["video_upload"]
    frames, count, _, _ = load(host, video="uploaded.mp4", short_side=64)
    assert count == 4 and frames.shape[1:] == (64, 64, 3)


def test_bad_videos_are_explained(host, tmp_path):
    cls = host.nodes.NODE_CLASS_MAPPINGS["RerenderLoadVideo"]
    assert "No video at 'missing.mp4' in the input folder" in cls.VALIDATE_INPUTS(video="missing.mp4", path="")
    with pytest.raises(ValueError, match="there is no file at .*nowhere.mp4"):
        load(host, path=str(tmp_path / "nowhere.mp4"))
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="OpenCV cannot open notes.mp4.*Convert it to an H.264"):
        load(host, path=str(tmp_path / "notes.mp4"))
    empty = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (64, 64)).release()
    with pytest.raises(ValueError, match="video: .*empty.mp4"):
        load(host, path=str(empty))
    with pytest.raises(ValueError, match="has no frames to load after skipping 50"):
        load(host, path=str(write_clip(tmp_path / "short.mp4", frames=3)), skip_first_frames=50)
    with pytest.raises(ValueError, match="crop removes the whole"):
        load(host, path=str(write_clip(tmp_path / "c.mp4", frames=2)), crop_left=100, crop_right=100)


def saved_video(host, result):
    path = saved_path(host, result)
    return (path, *video_facts(path))


@pytest.mark.parametrize("backend, codecs", [("pyav", ("avc1", "h264")), ("ffmpeg", ("avc1", "h264")),
                                             ("opencv", ("mp4v", "FMP4"))])   # FFmpeg reads MPEG-4 part 2 as FMP4
def test_save_video_writes_h264_and_falls_back_to_mp4v(host, pack, monkeypatch, backend, codecs):
    force_backend(pack, monkeypatch, backend)
    images = torch.rand(6, 48, 64, 3)
    result = save(host, images, fps=12.0, filename_prefix=f"tests/{backend}")
    monkeypatch.undo()   # OpenCV reads the file back through its own FFmpeg, whatever PATH was
    path, count, size, fps, codec = saved_video(host, result)
    assert result["result"] == (path,) and result["ui"]["animated"] == (True,)
    assert count == 6 and size == (48, 64) and fps == pytest.approx(12.0)
    assert codec in codecs
    assert ("text" in result["ui"]) == (backend == "opencv"), "only the mp4v fallback warns on the node"


def test_a_failed_write_leaves_no_file(host, pack, tmp_path, monkeypatch):
    monkeypatch.setattr(pack.video.codecs, "has_pyav", lambda: False)
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n/bin/cat > /dev/null\necho 'encoder exploded' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent))
    folder = os.path.join(host.folder_paths().get_output_directory(), "tests", "failing")
    with pytest.raises(RuntimeError, match="ffmpeg could not write the video: encoder exploded"):
        save(host, torch.rand(3, 32, 32, 3), fps=10.0, filename_prefix="tests/failing/video")
    assert os.listdir(folder) == []


@pytest.mark.parametrize("case, message", [
    ("folder is a file", "Cannot create the output folder"),
    ("no frames", "non-empty IMAGE batch"),
    ("fps", "fps must be above 0"),
])
def test_save_video_bad_input(host, case, message):
    output = host.folder_paths().get_output_directory()
    images, fps, prefix = torch.rand(2, 32, 32, 3), 10.0, "tests/bad"
    if case == "folder is a file":
        with open(os.path.join(output, "blocker"), "w") as handle:
            handle.write("a file where a folder should be")
        prefix = "blocker/video"
    elif case == "no frames":
        images = torch.rand(0, 32, 32, 3)
    elif case == "fps":
        fps = 0.0
    with pytest.raises(ValueError, match=message):
        save(host, images, fps=fps, filename_prefix=prefix)
    if case != "folder is a file":
        assert not [n for n in os.listdir(os.path.join(output, "tests")) if n.startswith(("bad", ".bad"))]
