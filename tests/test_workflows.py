"""The shipped workflows: their format, and each one run on the real server at a tiny size."""
from __future__ import annotations

import json
import re
import tomllib
import urllib.request

import cv2
import numpy as np
import pytest

from harness.host import BOOTSTRAP, HEADLESS, REPO, is_current_host, load_script
from harness.media import stream_facts, video_facts, write_clip_with_tone

WORKFLOW_DIR = REPO / "example_workflows"
NAMES = ("propagate_keyframes", "rerender_first_keyframe", "rerender_full_video", "rerender_keyframes",
         "rerender_lora_freeu", "rerender_host_video_nodes")
# Built from current ComfyUI's /object_info: its core VIDEO nodes do not exist on the 2024 host.
CURRENT_HOST_ONLY = ("rerender_host_video_nodes",)
HOST_VIDEO_NODES = {"LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo"}
NO_VIDEO_TYPE = "the 2024 host has no VIDEO type, nor the core Load/Create/Save Video nodes this workflow uses"
CLIP_FRAMES, CLIP_SIZE, CLIP_FPS = 9, 64, 20.0
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def load(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def links_into(workflow: dict, node_type: str) -> dict[str, tuple[str, int]]:
    """input name → (source node type, source slot) for the links into the first node of ``node_type``."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    target = next(n for n in workflow["nodes"] if n["type"] == node_type)
    found = {}
    for _, source, slot, node_id, target_slot, _ in workflow["links"]:
        if node_id == target["id"]:
            found[target["inputs"][target_slot]["name"]] = (nodes[source]["type"], slot)
    return found


def test_the_six_workflows_are_shipped():
    assert sorted(p.stem for p in WORKFLOW_DIR.glob("*.json")) == sorted(NAMES)
    assert set(CURRENT_HOST_ONLY) == set(load_script("build_workflows").CURRENT_HOST_ONLY)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_a_ui_graph_with_notes_and_model_hints(host, name):
    if name in CURRENT_HOST_ONLY and not is_current_host(host.root):
        pytest.skip(NO_VIDEO_TYPE)
    workflow = load(name)
    assert workflow["version"] == 0.4
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert workflow["last_node_id"] == max(nodes)
    for link_id, source, slot, target, target_slot, kind in workflow["links"]:
        assert link_id in nodes[source]["outputs"][slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert nodes[source]["outputs"][slot]["type"] == kind == nodes[target]["inputs"][target_slot]["type"]
    types = {n["type"] for n in nodes.values()}
    assert "Note" in types
    assert not types - set(host.nodes.NODE_CLASS_MAPPINGS) - {"Note"}, "unknown node types"
    assert (HOST_VIDEO_NODES <= types) == (name in CURRENT_HOST_ONLY)
    for node in nodes.values():
        if node["type"] in ("CheckpointLoaderSimple", "ControlNetLoader"):
            (hint,) = node["properties"]["models"]
            assert hint["name"] == node["widgets_values"][0] and hint["url"].startswith("https://") and hint["directory"]
    assert "v1-5-pruned-emaonly.safetensors" in json.dumps(workflow) or name == "propagate_keyframes"


def _current_host_version() -> str | None:
    version_file = BOOTSTRAP.CURRENT_HOST / "comfyui_version.py"
    if not version_file.is_file():
        return None
    return re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", version_file.read_text()).group(1)


@pytest.mark.parametrize("name", NAMES)
def test_every_node_says_which_pack_and_version_it_comes_from(name):
    """properties.cnr_id / ver, which the frontend and ComfyUI-Manager read to name missing packs."""
    pack_id, pack_version = PYPROJECT["project"]["name"], PYPROJECT["project"]["version"]
    oldest = re.fullmatch(r">=(\d+\.\d+\.\d+)", PYPROJECT["tool"]["comfy"]["requires-comfyui"]).group(1)
    core_versions = set()
    for node in load(name)["nodes"]:
        properties = node["properties"]
        if node["type"] == "Note":   # frontend-only: no Python pack to name
            assert "cnr_id" not in properties and "ver" not in properties
        elif node["type"].startswith("Rerender"):
            assert (properties["cnr_id"], properties["ver"]) == (pack_id, pack_version), node["type"]
        else:
            assert properties["cnr_id"] == "comfy-core", node["type"]
            assert re.fullmatch(r"\d+\.\d+\.\d+", properties["ver"]), node["type"]
            core_versions.add(properties["ver"])
    assert len(core_versions) == 1, f"one graph, one host: {core_versions}"
    if name in CURRENT_HOST_ONLY:   # the version of the current host that built it (when that host is here)
        assert _current_host_version() in (None, *core_versions)
    else:   # the 2024 host predates version numbers: the oldest ComfyUI the pack supports
        assert core_versions == {oldest}


@pytest.mark.parametrize("name", NAMES)
def test_the_sound_goes_from_the_loaded_clip_to_the_saved_file(name):
    workflow = load(name)
    types = {n["type"] for n in workflow["nodes"]}
    if "RerenderSaveVideo" in types:
        save = links_into(workflow, "RerenderSaveVideo")
        assert save["audio"] == ("RerenderLoadVideo", 3) and save["fps"] == ("RerenderLoadVideo", 2)
    elif "SaveVideo" in types:
        create = links_into(workflow, "CreateVideo")
        assert create["audio"] == ("GetVideoComponents", 1) and create["fps"] == ("GetVideoComponents", 2)
        assert create["images"] == ("RerenderPropagate", 0)
        assert links_into(workflow, "RerenderResizeFrames")["frames"] == ("GetVideoComponents", 0)
        assert links_into(workflow, "SaveVideo")["video"] == ("CreateVideo", 0)
    else:
        assert name in ("rerender_first_keyframe", "rerender_keyframes"), "a full-video workflow saves no video"


@pytest.mark.parametrize("name", NAMES)
def test_each_workflow_has_a_thumbnail(name):
    """The current templates browser shows example_workflows/<name>.jpg beside <name>.json."""
    path = WORKFLOW_DIR / f"{name}.jpg"
    assert path.is_file(), f"{path.name} is missing: run scripts/make_thumbnails.py"
    assert 2_000 < path.stat().st_size < 60_000
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path.name} is not a readable image"
    height, width = image.shape[:2]
    assert 400 <= width <= 800 and 200 <= height <= 500 and 1.5 < width / height < 2.0
    assert image.std() > 20, "the thumbnail is blank"


def tiny(prompt: dict) -> dict:
    """The same graph at test size: 64x64 frames, key frames 0, 4, 8, four steps."""
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] in ("RerenderLoadVideo", "RerenderResizeFrames"):
            inputs["short_side"] = CLIP_SIZE
        elif node["class_type"] == "RerenderSelectKeyframes":
            inputs["interval"] = 4
        elif node["class_type"] == "RerenderKeyframes":
            inputs["steps"] = 4
    return prompt


def assert_sound_in_sound_out(path) -> dict:
    facts = stream_facts(path)
    assert facts["audio"] is not None, f"{path.name} has no sound: {facts['streams']}"
    assert facts["audio"]["codec"] == "aac"
    assert facts["audio"]["duration"] == pytest.approx(CLIP_FRAMES / CLIP_FPS, abs=1 / CLIP_FPS)
    return facts


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_on_the_server(server, host, name):
    if name in CURRENT_HOST_ONLY and not is_current_host(host.root):
        pytest.skip(NO_VIDEO_TYPE)
    write_clip_with_tone(server.input_dir / "your_clip.mp4", frames=CLIP_FRAMES, width=CLIP_SIZE, height=CLIP_SIZE,
                         fps=CLIP_FPS)
    workflow = load(name)
    prompt = tiny(HEADLESS.workflow_to_prompt(workflow, server.object_info()))
    outputs = server.run(prompt, timeout=1500, workflow=workflow)
    by_type = {node["class_type"]: node_id for node_id, node in prompt.items()}
    if "RerenderSaveVideo" in by_type:
        (saved,) = outputs[by_type["RerenderSaveVideo"]]["images"]
        path = server.output_dir / saved["subfolder"] / saved["filename"]
        count, size, fps, _ = video_facts(path)
        assert count == CLIP_FRAMES and size == (CLIP_SIZE, CLIP_SIZE)
        assert fps == pytest.approx(CLIP_FPS, abs=0.01)
        assert_sound_in_sound_out(path)
        assert not list((server.output_dir / saved["subfolder"]).glob("*.partial*")), "a partial file was left behind"
    elif "SaveVideo" in by_type:   # the host's own Save Video: {"images": [...], "animated": [true]} on v0.3.64
        ui = outputs[by_type["SaveVideo"]]
        (saved,) = ui["images"]
        assert ui["animated"] == [True]
        facts = assert_sound_in_sound_out(server.output_dir / saved["subfolder"] / saved["filename"])
        video = facts["video"]
        assert video["codec"] == "h264" and video["frames"] == CLIP_FRAMES
        assert (video["width"], video["height"]) == (CLIP_SIZE, CLIP_SIZE)
        assert video["fps"] == pytest.approx(CLIP_FPS, abs=0.01)
    else:
        node = by_type.get("SaveImage") or by_type["PreviewImage"]
        images = outputs[node]["images"]
        assert len(images) == (1 if name == "rerender_first_keyframe" else 3)   # the anchor, or keys 0, 4, 8
        image = cv2.imdecode(np.frombuffer(server.view(images[0]), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (CLIP_SIZE, CLIP_SIZE)


@pytest.mark.server
def test_current_hosts_offer_the_workflows_as_templates(server, host):
    import urllib.error

    from harness.host import PACK_FOLDER_NAME

    if is_current_host(host.root):
        assert sorted(server.get("/workflow_templates")[PACK_FOLDER_NAME]) == sorted(NAMES)
        assert server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/rerender_full_video.json") == load("rerender_full_video")
        for name in NAMES:   # the templates browser's thumbnails
            with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg") as reply:
                assert reply.read() == (WORKFLOW_DIR / f"{name}.jpg").read_bytes()
    else:   # the 2024 host predates the templates browser: drag and drop is the way there
        with pytest.raises(urllib.error.HTTPError):
            server.get("/workflow_templates")
