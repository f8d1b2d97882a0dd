#!/usr/bin/env python3
"""Write the shipped workflows (example_workflows/*.json, UI format 0.4) from compact descriptions.

Sockets, widget order and default values come from a running host's /object_info, so the graphs
match the nodes exactly. Five graphs use only nodes the 2024 host has and are built from its
/object_info, so they load on old and current ComfyUI alike; rerender_host_video_nodes uses
current ComfyUI's core VIDEO nodes and is built from the current host's. Run after changing a
graph or a node:

    .venv/bin/python scripts/build_workflows.py        (starts both test hosts headless, ~30 s)

Every node records where it comes from as the frontend and ComfyUI-Manager read it
(``properties.cnr_id`` and ``properties.ver``): the pack's nodes its Registry id and version from
pyproject.toml, core nodes "comfy-core" and the ComfyUI version of the host that built the graph.
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "example_workflows"

# The same rules for which inputs are widgets as the UI-to-API conversion the tests and demo use.
HEADLESS, BOOTSTRAP = load_script("comfy_headless"), load_script("bootstrap_env")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACK_ID, PACK_VERSION = PYPROJECT["project"]["name"], PYPROJECT["project"]["version"]
CORE_ID = "comfy-core"
CORE_MODULES = ("nodes", "comfy_extras", "comfy_api_nodes")   # python_module roots the frontend calls core


def oldest_supported_comfyui() -> str:
    """The X.Y.Z of ``[tool.comfy] requires-comfyui = ">=X.Y.Z"``."""
    requirement = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    match = re.fullmatch(r"\s*>=\s*(\d+\.\d+\.\d+)\s*", requirement)
    if not match:
        raise ValueError(f"pyproject.toml: requires-comfyui should read '>=X.Y.Z', not {requirement!r}")
    return match.group(1)


@dataclass
class HostFacts:
    """What a graph is built from: the host's /object_info and the ComfyUI version its core nodes get."""
    object_info: dict
    comfyui_version: str


# The workflows that need current ComfyUI (its core VIDEO nodes); built from the current host.
CURRENT_HOST_ONLY = ("rerender_host_video_nodes",)

SD15 = {"name": "v1-5-pruned-emaonly.safetensors", "directory": "checkpoints",
        "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly.safetensors"}
CANNY = {"name": "control_v11p_sd15_canny.pth", "directory": "controlnet",
         "url": "https://huggingface.co/lllyasviel/ControlNet-v1-1/resolve/main/control_v11p_sd15_canny.pth"}
TILE = {"name": "control_v11f1e_sd15_tile.pth", "directory": "controlnet",
        "url": "https://huggingface.co/lllyasviel/ControlNet-v1-1/resolve/main/control_v11f1e_sd15_tile.pth"}
LORA_NAME = "sd15_style_lora.safetensors"
POSITIVE = "an oil painting of the scene, thick impasto brush strokes, vivid colours, best quality, extremely detailed"
NEGATIVE = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
            "worst quality, low quality")
INPUT_VIDEO = "your_clip.mp4"


@dataclass
class Node:
    key: str
    type: str
    column: int
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)      # input name -> (node key, output index)
    models: list = field(default_factory=list)
    title: str | None = None
    text: str | None = None                          # for notes
    rows: int = 0                                    # extra height (notes, previews)


@dataclass(frozen=True)
class Clip:
    """Where a graph's frames, frame rate and sound come from: (node key, output index) each."""
    frames: tuple[str, int]
    fps: tuple[str, int]
    audio: tuple[str, int]


class Graph:
    def __init__(self, name: str, host: HostFacts):
        self.name, self.info, self.comfyui_version, self.nodes = name, host.object_info, host.comfyui_version, []

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def _inputs(self, kind: str):
        for section in ("required", "optional"):
            yield from self.info[kind]["input"].get(section, {}).items()

    def _widget_names(self, kind: str) -> list[tuple[str, list]]:
        return [(name, spec) for name, spec in self._inputs(kind) if HEADLESS.is_widget(spec)]

    def to_json(self) -> dict:
        ids = {n.key: i + 1 for i, n in enumerate(self.nodes)}
        links, nodes, column_heights = [], [], {}
        outgoing: dict[tuple[str, int], list[int]] = {}
        for node in self.nodes:
            for name, (source, slot) in node.links.items():
                link_id = len(links) + 1
                kind = self.info[self._node(source).type]["output"][slot]
                links.append([link_id, ids[source], slot, ids[node.key], self._input_slot(node, name), kind])
                outgoing.setdefault((source, slot), []).append(link_id)
        for order, node in enumerate(self._ordered()):
            nodes.append(self._node_json(node, ids, links, outgoing, order, column_heights))
        return {"last_node_id": len(self.nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
                "groups": [], "config": {}, "extra": {"ds": {"scale": 0.55, "offset": [40, 60]}}, "version": 0.4}

    def _origin(self, node_type: str) -> dict:
        """``cnr_id`` and ``ver``: the Registry pack a node comes from, and that pack's version."""
        module = self.info[node_type].get("python_module")   # current hosts report it, the 2024 host does not
        if node_type.startswith("Rerender"):
            if module is not None and not module.startswith("custom_nodes."):
                raise ValueError(f"{node_type} comes from {module}, not from this pack")
            return {"cnr_id": PACK_ID, "ver": PACK_VERSION}
        if module is not None and module.split(".")[0] not in CORE_MODULES:
            raise ValueError(f"{self.name}: {node_type} comes from {module}, neither ComfyUI's core nor this pack")
        return {"cnr_id": CORE_ID, "ver": self.comfyui_version}

    def _node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)

    def _sockets(self, node: Node) -> list[tuple[str, str, bool]]:
        """(name, type, is a widget turned into a socket) for every socket shown on the node."""
        if node.type == "Note":
            return []
        sockets = []
        for name, spec in self._inputs(node.type):
            widget = HEADLESS.is_widget(spec)
            if not widget or name in node.links:
                sockets.append((name, "COMBO" if isinstance(spec[0], list) else spec[0], widget))
        return sockets

    def _input_slot(self, node: Node, name: str) -> int:
        return [s[0] for s in self._sockets(node)].index(name)

    def _ordered(self) -> list[Node]:
        done, order = set(), []
        while len(order) < len(self.nodes):
            for node in self.nodes:
                if node.key not in done and all(src in done for src, _ in node.links.values()):
                    done.add(node.key)
                    order.append(node)
        return order

    def _node_json(self, node: Node, ids, links, outgoing, order, column_heights) -> dict:
        if node.type == "Note":
            inputs, outputs, widgets_values = [], [], [node.text]
            height = 60 + 18 * node.rows
        else:
            inputs = []
            for name, kind, widget in self._sockets(node):
                link = next((l[0] for l in links if l[3] == ids[node.key] and l[4] == len(inputs)), None)
                entry = {"name": name, "type": kind, "link": link}
                if widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            info = self.info[node.type]
            names = info.get("output_name") or info["output"]
            outputs = [{"name": names[i], "type": kind, "links": outgoing.get((node.key, i), []), "slot_index": i}
                       for i, kind in enumerate(info["output"])]
            widgets_values = []
            for name, spec in self._widget_names(node.type):
                options = spec[1] if len(spec) > 1 else {}
                default = options.get("default", spec[0][0] if isinstance(spec[0], list) and spec[0] else None)
                widgets_values.append(node.widgets.get(name, default))
                if HEADLESS.has_control_widget(name, spec):
                    widgets_values.append("fixed")
            missing = set(node.widgets) - {n for n, _ in self._widget_names(node.type)}
            if missing:
                raise ValueError(f"{self.name}: {node.type} has no widgets {sorted(missing)}")
            height = 46 + 26 * (max(len(inputs), len(outputs)) + len(widgets_values)) + 18 * node.rows
        width = 380 if node.type == "Note" else 330
        x = 40 + node.column * 400
        y = column_heights.get(node.column, 40)
        column_heights[node.column] = y + height + 40
        # A Note is a frontend-only node: no Python pack, so the frontend and Manager record no cnr_id/ver
        # for it (the shipped ComfyUI templates' notes carry none either).
        properties = {"text": ""} if node.type == "Note" else dict(
            self._origin(node.type), **{"Node name for S&R": node.type})
        if node.models:
            properties["models"] = node.models
        result = {"id": ids[node.key], "type": node.type, "pos": [x, y], "size": [width, height], "flags": {},
                  "order": order, "mode": 0, "inputs": inputs, "outputs": outputs, "properties": properties,
                  "widgets_values": widgets_values}
        if node.title:
            result["title"] = node.title
        if node.type == "Note":
            result.update(color="#432", bgcolor="#653")
        return result


def note(key: str, column: int, text: str) -> Node:
    return Node(key, "Note", column, text=text, rows=text.count("\n") + len(text) // 60)


def load_with_pack(g: Graph) -> Clip:
    g.add(Node("video", "RerenderLoadVideo", 0, {"video": INPUT_VIDEO, "short_side": 512}))
    return Clip(frames=("video", 0), fps=("video", 2), audio=("video", 3))


def load_with_host_nodes(g: Graph) -> Clip:
    """Core Load Video → Get Video Components (frames at the clip's size) → Rerender: Resize Frames."""
    g.add(Node("video", "LoadVideo", 0, {"file": INPUT_VIDEO}, rows=14))   # room for its preview
    g.add(Node("components", "GetVideoComponents", 0, {}, {"video": ("video", 0)}))
    g.add(Node("resize", "RerenderResizeFrames", 0, {"short_side": 512}, {"frames": ("components", 0)}))
    return Clip(frames=("resize", 0), fps=("components", 2), audio=("components", 1))


def load_and_select(g: Graph, first_note: str, load=load_with_pack) -> Clip:
    g.add(note("note_start", 0, first_note))
    clip = load(g)
    g.add(Node("keys", "RerenderSelectKeyframes", 0, {"interval": 10}, {"frames": clip.frames}))
    return clip


def diffusion(g: Graph, anchor_only: bool, lora_freeu: bool = False) -> Node:
    """The key-frame part of a graph; returns its Rerender Keyframes node."""
    g.add(Node("checkpoint", "CheckpointLoaderSimple", 1, {"ckpt_name": SD15["name"]}, models=[SD15]))
    model = ("checkpoint", 0)
    if lora_freeu:
        g.add(Node("lora", "LoraLoaderModelOnly", 1, {"lora_name": LORA_NAME, "strength_model": 0.8}, {"model": model}))
        # FreeU_V2 scales the backbone by each sample's mean feature map, as the reference's FreeU does
        # (the host's FreeU uses a constant scale).
        g.add(Node("freeu", "FreeU_V2", 1, {"b1": 1.1, "b2": 1.2, "s1": 1.0, "s2": 0.2}, {"model": ("lora", 0)}))
        model = ("freeu", 0)
    g.add(Node("positive", "CLIPTextEncode", 1, {"text": POSITIVE}, {"clip": ("checkpoint", 1)}, title="Prompt", rows=2))
    g.add(Node("negative", "CLIPTextEncode", 1, {"text": NEGATIVE}, {"clip": ("checkpoint", 1)},
               title="Negative prompt", rows=2))
    g.add(Node("canny", "Canny", 2, {"low_threshold": 0.2, "high_threshold": 0.5}, {"image": ("keys", 0)}))
    g.add(Node("controlnet", "ControlNetLoader", 2, {"control_net_name": CANNY["name"]}, models=[CANNY]))
    g.add(Node("apply", "ControlNetApplyAdvanced", 2, {"strength": 0.7, "start_percent": 0.0, "end_percent": 1.0},
               {"positive": ("positive", 0), "negative": ("negative", 0), "control_net": ("controlnet", 0),
                "image": ("canny", 0)}, title="Apply ControlNet (one control image per key frame)"))
    conditioning = ("apply", 0), ("apply", 1)
    if lora_freeu:
        g.add(Node("tile", "ControlNetLoader", 2, {"control_net_name": TILE["name"]}, models=[TILE]))
        g.add(Node("apply_tile", "ControlNetApplyAdvanced", 2, {"strength": 0.5, "start_percent": 0.0, "end_percent": 1.0},
                   {"positive": ("apply", 0), "negative": ("apply", 1), "control_net": ("tile", 0), "image": ("keys", 0)},
                   title="Apply ControlNet (tile: the key frames themselves)"))
        conditioning = ("apply_tile", 0), ("apply_tile", 1)
    g.add(Node("attention", "RerenderCrossFrameAttention", 3, {}, {"model": model}))
    g.add(Node("shape", "RerenderShapeFusion", 3, {}, {"model": ("attention", 0)}))
    g.add(Node("pixel", "RerenderPixelFusion", 3, {}, {"model": ("shape", 0), "vae": ("checkpoint", 2)}))
    g.add(Node("adain", "RerenderColorAdaIN", 3, {}, {"model": ("pixel", 0)}))
    return g.add(Node("render", "RerenderKeyframes", 4, {"seed": 0, "anchor_only": anchor_only},
               {"model": ("adain", 0), "positive": conditioning[0], "negative": conditioning[1], "vae": ("checkpoint", 2),
                "key_frames": ("keys", 0)}))


def save_with_pack(g: Graph, clip: Clip, frames: tuple[str, int], column: int) -> None:
    g.add(Node("save", "RerenderSaveVideo", column, {"filename_prefix": f"rerender/{g.name}"},
               {"images": frames, "fps": clip.fps, "audio": clip.audio}, rows=8))


def save_with_host_nodes(g: Graph, clip: Clip, frames: tuple[str, int], column: int) -> None:
    g.add(Node("create", "CreateVideo", column, {}, {"images": frames, "fps": clip.fps, "audio": clip.audio}))
    g.add(Node("save", "SaveVideo", column, {"filename_prefix": f"rerender/{g.name}"}, {"video": ("create", 0)},
               rows=8))


def propagate_and_save(g: Graph, clip: Clip, key_frames: tuple[str, int], column: int, save=save_with_pack,
                       flow_column: int | None = None) -> None:
    g.add(Node("flow", "RerenderOpticalFlow", column if flow_column is None else flow_column, {},
               {"frames": clip.frames}))
    g.add(Node("propagate", "RerenderPropagate", column,
               {}, {"frames": clip.frames, "key_frames": key_frames, "key_indices": ("keys", 1), "flow": ("flow", 0)}))
    save(g, clip, ("propagate", 0), column + 1)


START = ("Upload your clip in Rerender: Load Video (or give its full path). Steady motion works best; "
         "Select Key Frames picks every 10th frame (5-20 suits most clips).")
MODELS = ("Models: {models}. Download hints are attached to the loader nodes; put the files into "
          "ComfyUI/models/<folder> and press R to refresh.")
HOST_NODES_START = (
    "Needs current ComfyUI (built on v{version}): it uses the core video nodes Load Video, Get Video Components, "
    "Create Video and Save Video, which older versions lack; there, rerender_full_video does the same with "
    "Rerender's own Load and Save Video. Upload your clip in Load Video. Get Video Components gives its frames at "
    "their own size, its sound and its frame rate; Rerender: Resize Frames brings the frames to Rerender's size "
    "(short side 512, sides multiples of 64). Select Key Frames picks every 10th frame (5-20 suits most clips).")
LOOK = ("Edit the prompt, then tune the look on the first key frame (the anchor) with anchor_only on: it is exactly "
        "frame 0 of the full run. Switch Colour AdaIN off (bypass it) if colours jitter.")


def first_keyframe(host: HostFacts) -> Graph:
    g = Graph("rerender_first_keyframe", host)
    load_and_select(g, START)
    diffusion(g, anchor_only=True)
    g.add(Node("preview", "PreviewImage", 4, {}, {"images": ("render", 0)}, rows=8))
    g.add(note("note_look", 4, LOOK + " When you like it, open rerender_keyframes (or rerender_full_video)."))
    g.add(note("note_models", 1, MODELS.format(models=f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)")))
    return g


def keyframes(host: HostFacts) -> Graph:
    g = Graph("rerender_keyframes", host)
    load_and_select(g, START)
    diffusion(g, anchor_only=False)
    g.add(Node("save", "SaveImage", 4, {"filename_prefix": "rerender/keyframe"}, {"images": ("render", 0)}, rows=8))
    g.add(note("note_look", 4, "Renders every key frame under the four cross-frame constraints (two passes each with "
                               "pixel-aware fusion). Lower Pixel-Aware Fusion's strength if errors build up on long "
                               "clips; loose cross-frame attention helps with fast motion."))
    g.add(note("note_models", 1, MODELS.format(models=f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)")))
    return g


def key_flow_from_clip(g: Graph, render: Node, reuse: str) -> None:
    """Rerender Keyframes chains its key-to-key flows from the clip's flow, which propagation needs anyway."""
    render.links.update(flow=("flow", 0), key_indices=("keys", 1))
    g.add(note("note_flow", 0, "Optical Flow runs once over the whole clip: Keyframes chains it from key frame to key "
                               "frame (with DIS, sharper fusion on large motion than a flow estimated between "
                               f"frames far apart); {reuse}."))


def full_video(host: HostFacts, lora_freeu: bool = False) -> Graph:
    g = Graph("rerender_lora_freeu" if lora_freeu else "rerender_full_video", host)
    clip = load_and_select(g, START)
    render = diffusion(g, anchor_only=False, lora_freeu=lora_freeu)
    propagate_and_save(g, clip, ("render", 0), column=5, flow_column=0)
    key_flow_from_clip(g, render, "Propagate reuses it" if lora_freeu else "Propagate and Consistency reuse it")
    g.add(note("note_propagate", 5, "Every other frame is propagated from its two neighbouring key frames on the GPU "
                                    "(CPU when there is none). histogram+poisson blending keeps edges crisper."))
    if not lora_freeu:
        measure_consistency(g, clip, column=6)
    models = f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)"
    if lora_freeu:
        models += f", {TILE['name']} (controlnet), your SD1.5 LoRA as {LORA_NAME} (loras) or pick yours"
        g.add(note("note_lora", 1, "LoRA and FreeU go in front of the Rerender constraint nodes; FreeU_V2 (which, like "
                                   "the reference's FreeU, scales by the mean feature map) uses the "
                                   "reference's example factors (1.1, 1.2, 1.0, 0.2). The second ControlNet (tile) "
                                   "uses the key frames themselves as control images."))
    g.add(note("note_models", 1, MODELS.format(models=models)))
    return g


def measure_consistency(g: Graph, clip: Clip, column: int) -> None:
    """Warp error and flicker of the propagated video along the source's flow, with a plot to preview."""
    g.add(Node("consistency", "RerenderConsistency", column, {},
               {"frames": ("propagate", 0), "source_frames": clip.frames, "flow": ("flow", 0)}))
    g.add(Node("consistency_plot", "PreviewImage", column, {}, {"images": ("consistency", 3)}, rows=6,
               title="Consistency (lower is steadier)"))
    g.add(note("note_consistency", column, "Consistency measures the result along the source's motion: warp error "
                                           "(the paper's Pixel-MSE) and flicker per frame pair. Change a setting, "
                                           "run again and compare the numbers on your own clip."))


def propagate_only(host: HostFacts) -> Graph:
    g = Graph("propagate_keyframes", host)
    clip = load_and_select(g, "Propagate key frames you stylised elsewhere (painted, another model, a filter): no diffusion "
                       "model needed. " + START)
    g.add(Node("stylise", "ImageQuantize", 1, {"colors": 8, "dither": "none"}, {"image": ("keys", 0)},
               title="Stand-in stylisation (replace with your key frames)"))
    g.add(note("note_keys", 1, "Replace 'Stand-in stylisation' with your own stylised key frames: one Load Image per "
                               "key frame, joined by Batch Images in the order of key_indices_text (shown by Select "
                               "Key Frames), same size as the video frames."))
    propagate_and_save(g, clip, ("stylise", 0), column=2)
    return g


def host_video_nodes(host: HostFacts) -> Graph:
    g = Graph("rerender_host_video_nodes", host)
    clip = load_and_select(g, HOST_NODES_START.format(version=host.comfyui_version), load=load_with_host_nodes)
    render = diffusion(g, anchor_only=False)
    propagate_and_save(g, clip, ("render", 0), column=5, save=save_with_host_nodes, flow_column=0)
    key_flow_from_clip(g, render, "Propagate reuses it")
    g.add(note("note_propagate", 5, "Every other frame is propagated from its two neighbouring key frames on the GPU "
                                    "(CPU when there is none). histogram+poisson blending keeps edges crisper."))
    g.add(note("note_sound", 6, "Create Video joins the propagated frames with the clip's sound at the clip's frame "
                                "rate (both from Get Video Components); Save Video writes an H.264 mp4 with AAC sound."))
    g.add(note("note_memory", 0, "Core Load Video decodes every frame at the clip's full size before Resize Frames "
                                 "shrinks them: for long or high-resolution clips, rerender_full_video (its Load "
                                 "Video resizes while decoding and can cap the frame count) needs far less memory."))
    g.add(note("note_models", 1, MODELS.format(models=f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)")))
    return g


def host_facts(root: Path) -> HostFacts:
    """Start the host headless and read its /object_info and the ComfyUI version it reports.

    The version is /system_stats' ``comfyui_version`` (from the host's comfyui_version.py), which is
    also what the frontend records for core nodes. Hosts from before ComfyUI numbered its releases
    report none (the 2024 test host is a March-2024 commit): their core nodes get the oldest ComfyUI
    the pack supports (pyproject's requires-comfyui), a release that has every one of those nodes.
    """
    server = HEADLESS.ComfyServer(root, Path(tempfile.mkdtemp(prefix="rerender-workflows-")), {})
    try:
        server.start()
        version = server.get("/system_stats")["system"].get("comfyui_version")
        return HostFacts(server.object_info(), version or oldest_supported_comfyui())
    finally:
        server.stop()


def build(host_2024: HostFacts, current_host: HostFacts) -> dict[str, dict]:
    """Every shipped workflow by name: five from the 2024 host (they load everywhere), one from the current host."""
    graphs = [first_keyframe(host_2024), keyframes(host_2024), full_video(host_2024), propagate_only(host_2024),
              full_video(host_2024, lora_freeu=True), host_video_nodes(current_host)]
    assert [g.name for g in graphs if g.info is current_host.object_info] == list(CURRENT_HOST_ONLY)
    return {g.name: g.to_json() for g in graphs}


def main() -> None:
    host_2024 = host_facts(BOOTSTRAP.ensure_default_host())
    current_host = host_facts(BOOTSTRAP.ensure_current_host())
    OUT.mkdir(exist_ok=True)
    for name, workflow in build(host_2024, current_host).items():
        (OUT / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
        print(OUT / f"{name}.json")


if __name__ == "__main__":
    sys.exit(main())
