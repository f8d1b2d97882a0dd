#!/usr/bin/env python3
"""Write the shipped workflows (workflows/*.json, UI format 0.4) from compact descriptions.

Sockets, widget order and default values come from a running host's /object_info, so the graphs
match the nodes exactly. Run after changing a graph or a node:

    .venv/bin/python scripts/build_workflows.py        (starts the test host headless, ~15 s)
"""
from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "workflows"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"rerender_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The same rules for which inputs are widgets as the UI-to-API conversion the tests and demo use.
HEADLESS = _script("comfy_headless")

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


class Graph:
    def __init__(self, name: str, object_info: dict):
        self.name, self.info, self.nodes = name, object_info, []

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
        properties = {"Node name for S&R": node.type} if node.type != "Note" else {"text": ""}
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


def load_and_select(g: Graph, first_note: str) -> None:
    g.add(note("note_start", 0, first_note))
    g.add(Node("video", "RerenderLoadVideo", 0, {"video": INPUT_VIDEO, "short_side": 512}))
    g.add(Node("keys", "RerenderSelectKeyframes", 0, {"interval": 10}, {"frames": ("video", 0)}))


def diffusion(g: Graph, anchor_only: bool, lora_freeu: bool = False) -> None:
    g.add(Node("checkpoint", "CheckpointLoaderSimple", 1, {"ckpt_name": SD15["name"]}, models=[SD15]))
    model = ("checkpoint", 0)
    if lora_freeu:
        g.add(Node("lora", "LoraLoaderModelOnly", 1, {"lora_name": LORA_NAME, "strength_model": 0.8}, {"model": model}))
        g.add(Node("freeu", "FreeU", 1, {"b1": 1.1, "b2": 1.2, "s1": 1.0, "s2": 0.2}, {"model": ("lora", 0)}))
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
    g.add(Node("render", "RerenderKeyframes", 4, {"seed": 0, "anchor_only": anchor_only},
               {"model": ("adain", 0), "positive": conditioning[0], "negative": conditioning[1], "vae": ("checkpoint", 2),
                "key_frames": ("keys", 0)}))


def propagate_and_save(g: Graph, key_frames: tuple[str, int], column: int) -> None:
    g.add(Node("flow", "RerenderOpticalFlow", column, {}, {"frames": ("video", 0)}))
    g.add(Node("propagate", "RerenderPropagate", column,
               {}, {"frames": ("video", 0), "key_frames": key_frames, "key_indices": ("keys", 1), "flow": ("flow", 0)}))
    g.add(Node("save", "RerenderSaveVideo", column + 1, {"filename_prefix": f"rerender/{g.name}"},
               {"images": ("propagate", 0), "fps": ("video", 2)}, rows=8))


START = ("Upload your clip in Rerender: Load Video (or give its full path). Steady motion works best; "
         "Select Key Frames picks every 10th frame (5-20 suits most clips).")
MODELS = ("Models: {models}. Download hints are attached to the loader nodes; put the files into "
          "ComfyUI/models/<folder> and press R to refresh.")
LOOK = ("Edit the prompt, then tune the look on the first key frame (the anchor) with anchor_only on: it is exactly "
        "frame 0 of the full run. Switch Colour AdaIN off (bypass it) if colours jitter.")


def first_keyframe(info: dict) -> Graph:
    g = Graph("rerender_first_keyframe", info)
    load_and_select(g, START)
    diffusion(g, anchor_only=True)
    g.add(Node("preview", "PreviewImage", 4, {}, {"images": ("render", 0)}, rows=8))
    g.add(note("note_look", 4, LOOK + " When you like it, open rerender_keyframes (or rerender_full_video)."))
    g.add(note("note_models", 1, MODELS.format(models=f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)")))
    return g


def keyframes(info: dict) -> Graph:
    g = Graph("rerender_keyframes", info)
    load_and_select(g, START)
    diffusion(g, anchor_only=False)
    g.add(Node("save", "SaveImage", 4, {"filename_prefix": "rerender/keyframe"}, {"images": ("render", 0)}, rows=8))
    g.add(note("note_look", 4, "Renders every key frame under the four cross-frame constraints (two passes each with "
                               "pixel-aware fusion). Lower Pixel-Aware Fusion's strength if errors build up on long "
                               "clips; loose cross-frame attention helps with fast motion."))
    g.add(note("note_models", 1, MODELS.format(models=f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)")))
    return g


def full_video(info: dict, lora_freeu: bool = False) -> Graph:
    g = Graph("rerender_lora_freeu" if lora_freeu else "rerender_full_video", info)
    load_and_select(g, START)
    diffusion(g, anchor_only=False, lora_freeu=lora_freeu)
    propagate_and_save(g, ("render", 0), column=5)
    g.add(note("note_propagate", 5, "Every other frame is propagated from its two neighbouring key frames on the GPU "
                                    "(CPU when there is none). histogram+poisson blending keeps edges crisper."))
    models = f"{SD15['name']} (checkpoints), {CANNY['name']} (controlnet)"
    if lora_freeu:
        models += f", {TILE['name']} (controlnet), your SD1.5 LoRA as {LORA_NAME} (loras) or pick yours"
        g.add(note("note_lora", 1, "LoRA and FreeU go in front of the Rerender constraint nodes; FreeU uses the "
                                   "reference's example factors (1.1, 1.2, 1.0, 0.2). The second ControlNet (tile) "
                                   "uses the key frames themselves as control images."))
    g.add(note("note_models", 1, MODELS.format(models=models)))
    return g


def propagate_only(info: dict) -> Graph:
    g = Graph("propagate_keyframes", info)
    load_and_select(g, "Propagate key frames you stylised elsewhere (painted, another model, a filter): no diffusion "
                       "model needed. " + START)
    g.add(Node("stylise", "ImageQuantize", 1, {"colors": 8, "dither": "none"}, {"image": ("keys", 0)},
               title="Stand-in stylisation (replace with your key frames)"))
    g.add(note("note_keys", 1, "Replace 'Stand-in stylisation' with your own stylised key frames: one Load Image per "
                               "key frame, joined by Batch Images in the order of key_indices_text (shown by Select "
                               "Key Frames), same size as the video frames."))
    propagate_and_save(g, ("stylise", 0), column=2)
    return g


def load_object_info() -> dict:
    server = HEADLESS.ComfyServer(_script("bootstrap_env").DEFAULT_HOST, Path(tempfile.mkdtemp(prefix="rerender-workflows-")), {})
    try:
        server.start()
        return server.object_info()
    finally:
        server.stop()


def build(object_info: dict) -> dict[str, dict]:
    graphs = [first_keyframe(object_info), keyframes(object_info), full_video(object_info), propagate_only(object_info),
              full_video(object_info, lora_freeu=True)]
    return {g.name: g.to_json() for g in graphs}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, workflow in build(load_object_info()).items():
        (OUT / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
        print(OUT / f"{name}.json")


if __name__ == "__main__":
    sys.exit(main())
