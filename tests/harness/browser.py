"""Headless Chromium on the host's real web UI, and the scripts the browser tests run in the page.

``open_web_ui(server)`` is what the ``browser`` fixture in conftest.py yields: Debian's chromium
through chromedriver, with the web UI loaded and the pack's nodes registered in it.
"""
from __future__ import annotations

import contextlib
import shutil
import time

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1800,1100")
# The page is ready once the app, its graph and canvas exist and the pack's node types are registered.
READY = ("return !!(window.app && window.app.graph && window.app.canvas && "
         "(!window.LiteGraph || window.LiteGraph.registered_node_types['RerenderKeyframes']))")

# Drop a workflow file onto the canvas the way a drag and drop does (a ``drop`` event carrying the file).
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

# The graph on the canvas: its node types, those the web UI does not know, and any open dialog.
INSPECT = """
const graph = window.app.graph;
const types = (window.LiteGraph || {}).registered_node_types || {};
const nodes = graph._nodes || graph.nodes || [];
const missing = nodes.filter(n => n.has_errors || (Object.keys(types).length && !types[n.type])).map(n => n.type);
const dialogs = [...document.querySelectorAll(".comfy-modal, .p-dialog, [role=dialog]")]
    .filter(d => d.offsetParent !== null && d.innerText.trim()).map(d => d.innerText.trim().slice(0, 300));
return {count: nodes.length, types: nodes.map(n => n.type), missing, dialogs};
"""

# Zoom the canvas so the whole graph is in view (for screenshots).
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


def require_chromium() -> None:
    if not (shutil.which("chromium") or shutil.which(CHROMIUM)) or not shutil.which("chromedriver"):
        pytest.fail("Chromium and chromedriver are needed (Debian packages chromium and chromium-driver; "
                    "`make test` installs them when run as root).")


@contextlib.contextmanager
def open_web_ui(server, timeout: float = 180.0):
    """Chromium with ``server``'s web UI loaded; always quit at the end."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        driver.get(server.url)
        deadline = time.monotonic() + timeout
        while not driver.execute_script(READY):
            if time.monotonic() > deadline:
                pytest.fail(f"the web UI did not come up; browser log: {driver.get_log('browser')[-5:]}")
            time.sleep(1)
        yield driver
    finally:
        driver.quit()


def drop_workflow(driver, text: str, name: str) -> dict:
    """Drop a workflow's JSON text onto the canvas; return what INSPECT then finds."""
    driver.execute_async_script(DROP, text, name)
    return driver.execute_script(INSPECT)
