"""Save Video's files play in the browser: the node's own preview on current hosts, and the served file.

Headless Chromium (Debian's build, with its H.264/AAC decoders) loads the file the way the web UI
does, from the host's /view endpoint; ``readyState >= 2`` (HAVE_CURRENT_DATA) means it decoded a
frame, and the duration must be the clip's within one frame.
"""
from __future__ import annotations

import time
import urllib.parse

import pytest

from harness.host import is_current_host
from harness.media import write_clip_with_tone
from harness.video_nodes import load_and_save_prompt

FRAMES, FPS, SIZE = 12, 20.0, 64

PLAY_URL = """
const [url, done] = arguments;
const video = document.createElement("video");
video.muted = true;
video.preload = "auto";
const report = () => done({readyState: video.readyState, duration: video.duration,
                           error: video.error && video.error.message, width: video.videoWidth});
video.onloadeddata = report;
video.onerror = report;
setTimeout(report, 20000);
video.src = url;
document.body.appendChild(video);
"""

# Build Load Video → Save Video on the canvas, as a user would, and queue it from the page.
QUEUE_GRAPH = """
const [path, done] = arguments;
const graph = window.app.graph;
graph.clear();
const load = LiteGraph.createNode("RerenderLoadVideo");
const save = LiteGraph.createNode("RerenderSaveVideo");
graph.add(load); graph.add(save);
load.widgets.find(w => w.name === "path").value = path;
load.widgets.find(w => w.name === "short_side").value = 0;
save.widgets.find(w => w.name === "fps").value = %(fps)s;
save.widgets.find(w => w.name === "filename_prefix").value = "browser/preview";
load.connect(0, save, save.findInputSlot("images"));
load.connect(3, save, save.findInputSlot("audio"));
window.__rerender_save = save;
window.app.queuePrompt(0, 1).then(() => done(true), (e) => done(String(e)));
""" % {"fps": FPS}

# Drop a saved mp4 onto an empty canvas, as a user drags an output back to get its graph.
DROP_SAVED_FILE = """
const [url, done] = arguments;
window.app.graph.clear();
fetch(url).then(r => r.blob()).then(blob => {
    const file = new File([blob], "dragged_back.mp4", {type: "video/mp4"});
    const transfer = new DataTransfer();
    transfer.items.add(file);
    const target = document.querySelector("canvas") || document;
    target.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    target.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    setTimeout(() => {
        const nodes = window.app.graph._nodes || window.app.graph.nodes || [];
        done(nodes.map(n => n.type).sort());
    }, 3000);
}, e => done(String(e)));
"""

PREVIEW_STATE = """
const save = window.__rerender_save;
const video = save && save.videoContainer && save.videoContainer.querySelector("video");
return video ? {readyState: video.readyState, duration: video.duration, src: video.src} : null;
"""


def _write_clip(server) -> str:
    return str(write_clip_with_tone(server.input_dir / "browser_clip.mp4", frames=FRAMES, width=SIZE, height=SIZE,
                                    fps=FPS))


def _run_and_find_output(server, clip: str) -> dict:
    (saved,) = server.run(load_and_save_prompt(clip, "browser/served"), timeout=300)["2"]["images"]
    return saved


@pytest.mark.server
@pytest.mark.slow
def test_the_saved_file_plays_in_chromium(server, browser):
    saved = _run_and_find_output(server, _write_clip(server))
    url = server.url + "/view?" + urllib.parse.urlencode(
        {"filename": saved["filename"], "subfolder": saved["subfolder"], "type": saved["type"]})
    state = browser.execute_async_script(PLAY_URL, url)
    assert state["error"] is None, f"Chromium could not play the file: {state}"
    assert state["readyState"] >= 2 and state["width"] == SIZE
    assert state["duration"] == pytest.approx(FRAMES / FPS, abs=1 / FPS)


@pytest.mark.server
@pytest.mark.slow
def test_the_nodes_preview_plays_and_the_file_opens_its_workflow(server, browser, host):
    if not is_current_host(host.root):
        pytest.skip("the 2024 web UI previews animated outputs as images only and cannot open a workflow from an "
                    "mp4: there is no video preview or mp4 drop to test")
    clip = _write_clip(server)
    assert browser.execute_async_script(QUEUE_GRAPH, clip) is True
    deadline, state = time.monotonic() + 240, None
    while time.monotonic() < deadline:
        state = browser.execute_script(PREVIEW_STATE)
        if state and state["readyState"] >= 2:
            break
        time.sleep(1)
    assert state is not None, "Save Video showed no <video> preview"
    assert state["readyState"] >= 2, f"the preview did not play: {state}"
    assert state["duration"] == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    assert "browser%2Fpreview" in state["src"] or "subfolder=browser" in state["src"]
    # The file carries the graph the page queued: dragged back onto the canvas, it opens that graph.
    types = browser.execute_async_script(DROP_SAVED_FILE, state["src"])
    assert types == ["RerenderLoadVideo", "RerenderSaveVideo"], f"the mp4 did not open its workflow: {types}"
