"""The shipped workflows: their format, and each one run on the real server at a tiny size."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from harness.host import HEADLESS, REPO
from harness.media import video_facts
from harness.synthetic import shifted_clip

WORKFLOW_DIR = REPO / "workflows"
NAMES = ("propagate_keyframes", "rerender_first_keyframe", "rerender_full_video", "rerender_keyframes",
         "rerender_lora_freeu")
CLIP_FRAMES, CLIP_SIZE, CLIP_FPS = 9, 64, 20.0


def load(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def test_the_five_workflows_are_shipped():
    assert sorted(p.stem for p in WORKFLOW_DIR.glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_a_ui_graph_with_notes_and_model_hints(host, name):
    workflow = load(name)
    assert workflow["version"] == 0.4
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert workflow["last_node_id"] == max(nodes)
    for link_id, source, slot, target, target_slot, kind in workflow["links"]:
        assert link_id in nodes[source]["outputs"][slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
    types = {n["type"] for n in nodes.values()}
    assert "Note" in types
    assert not types - set(host.nodes.NODE_CLASS_MAPPINGS) - {"Note"}, "unknown node types"
    for node in nodes.values():
        if node["type"] in ("CheckpointLoaderSimple", "ControlNetLoader"):
            (hint,) = node["properties"]["models"]
            assert hint["name"] == node["widgets_values"][0] and hint["url"].startswith("https://") and hint["directory"]
    assert "v1-5-pruned-emaonly.safetensors" in json.dumps(workflow) or name == "propagate_keyframes"


def write_clip(path) -> None:
    frames, _ = shifted_clip(frames=CLIP_FRAMES, dx=2, dy=1, height=CLIP_SIZE, width=CLIP_SIZE, cell=8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, (CLIP_SIZE, CLIP_SIZE))
    for frame in frames:
        writer.write(cv2.cvtColor((frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()


def tiny(prompt: dict) -> dict:
    """The same graph at test size: 64x64 frames, key frames 0, 4, 8, four steps."""
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "RerenderLoadVideo":
            inputs["short_side"] = CLIP_SIZE
        elif node["class_type"] == "RerenderSelectKeyframes":
            inputs["interval"] = 4
        elif node["class_type"] == "RerenderKeyframes":
            inputs["steps"] = 4
    return prompt


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_on_the_server(server, name):
    write_clip(server.input_dir / "your_clip.mp4")
    workflow = load(name)
    prompt = tiny(HEADLESS.workflow_to_prompt(workflow, server.object_info()))
    outputs = server.run(prompt, timeout=1500, workflow=workflow)
    by_type = {node["class_type"]: node_id for node_id, node in prompt.items()}
    if "RerenderSaveVideo" in by_type:
        (saved,) = outputs[by_type["RerenderSaveVideo"]]["images"]
        count, size, fps, _ = video_facts(server.output_dir / saved["subfolder"] / saved["filename"])
        assert count == CLIP_FRAMES and size == (CLIP_SIZE, CLIP_SIZE)
        assert fps == pytest.approx(CLIP_FPS, abs=0.01)
        assert not list((server.output_dir / saved["subfolder"]).glob("*.partial*")), "a partial file was left behind"
    else:
        node = by_type.get("SaveImage") or by_type["PreviewImage"]
        images = outputs[node]["images"]
        assert len(images) == (1 if name == "rerender_first_keyframe" else 3)   # the anchor, or keys 0, 4, 8
        image = cv2.imdecode(np.frombuffer(server.view(images[0]), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (CLIP_SIZE, CLIP_SIZE)


@pytest.mark.server
def test_current_hosts_offer_the_workflows_as_templates(server, host):
    import urllib.error

    from harness.host import PACK_FOLDER_NAME, is_current_host

    if is_current_host(host.root):
        assert sorted(server.get("/workflow_templates")[PACK_FOLDER_NAME]) == sorted(NAMES)
        assert server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/rerender_full_video.json") == load("rerender_full_video")
    else:   # the 2024 host predates the templates browser: drag and drop is the way there
        with pytest.raises(urllib.error.HTTPError):
            server.get("/workflow_templates")
