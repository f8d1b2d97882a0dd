"""Each shipped workflow dropped onto the host's real web UI in headless Chromium.

The file reaches the page through the same path a drag-and-drop takes (a ``drop`` event carrying
the file); the test then checks that every node type exists, that no error dialog opened, and
saves a screenshot of the whole graph under test-output/screenshots/.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest

from harness.host import REPO

SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

DROP = """
const [text, name, done] = arguments;
const file = new File([text], name, {type: "application/json"});
const transfer = new DataTransfer();
transfer.items.add(file);
const target = document.querySelector("canvas") || document;
target.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
target.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
setTimeout(done, 3000);
"""

INSPECT = """
const graph = window.app.graph;
const types = (window.LiteGraph || {}).registered_node_types || {};
const nodes = graph._nodes || graph.nodes || [];
const missing = nodes.filter(n => n.has_errors || (Object.keys(types).length && !types[n.type])).map(n => n.type);
const dialogs = [...document.querySelectorAll(".comfy-modal, .p-dialog, [role=dialog]")]
    .filter(d => d.offsetParent !== null && d.innerText.trim()).map(d => d.innerText.trim().slice(0, 300));
return {count: nodes.length, types: nodes.map(n => n.type), missing, dialogs};
"""

FIT = """
const canvas = window.app.canvas, nodes = window.app.graph._nodes || window.app.graph.nodes;
let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
for (const n of nodes) {
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 30);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
}
const el = canvas.canvas, scale = Math.min(el.width / (x1 - x0 + 80), el.height / (y1 - y0 + 80));
canvas.ds.scale = scale;
canvas.ds.offset = [-x0 + 40, -y0 + 40];
canvas.setDirty(true, true);
canvas.draw(true, true);
"""


@pytest.fixture(scope="module")
def browser(server):
    if not (shutil.which("chromium") or shutil.which(CHROMIUM)) or not shutil.which("chromedriver"):
        pytest.fail("Chromium and chromedriver are needed (Debian packages chromium and chromium-driver; "
                    "`make test` installs them when run as root).")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1800,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        driver.get(server.url)
        deadline = time.monotonic() + 180
        ready = "return !!(window.app && window.app.graph && window.app.canvas && " \
                "(!window.LiteGraph || window.LiteGraph.registered_node_types['RerenderKeyframes']))"
        while not driver.execute_script(ready):
            if time.monotonic() > deadline:
                pytest.fail(f"the web UI did not come up; browser log: {driver.get_log('browser')[-5:]}")
            time.sleep(1)
        yield driver
    finally:
        driver.quit()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("name", ["rerender_first_keyframe", "rerender_keyframes", "rerender_full_video",
                                  "propagate_keyframes", "rerender_lora_freeu"])
def test_workflow_loads_in_the_web_ui(browser, name):
    text = (REPO / "workflows" / f"{name}.json").read_text()
    expected = sorted(n["type"] for n in json.loads(text)["nodes"])
    browser.execute_async_script(DROP, text, f"{name}.json")
    state = browser.execute_script(INSPECT)
    browser.execute_script(FIT)
    time.sleep(0.5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    assert not state["missing"], f"node types missing in the web UI: {state['missing']}"
    assert not state["dialogs"], f"the web UI showed a dialog: {state['dialogs']}"
    assert sorted(state["types"]) == expected, "the graph on the canvas is not the dropped workflow"
