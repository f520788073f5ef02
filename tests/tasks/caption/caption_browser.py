"""Headless Chromium for the storyboard tests: render a page and measure it (fails in CI without chromium)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Measured in the page after load: images decoded, the document's width against the viewport, and every
# element whose content spills out sideways while its overflow is visible (a word that does not wrap).
_CHECK = """<script>window.addEventListener('load', function () {
  var imgs = document.images, loaded = 0, spill = [];
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) loaded++;
  document.querySelectorAll('body *').forEach(function (e) {
    var cs = getComputedStyle(e);
    if (cs.display === 'inline' || cs.overflowX !== 'visible') return;
    if (e.scrollWidth > e.clientWidth + 1) spill.push(e.tagName.toLowerCase() + '.' + e.className);
  });
  var d = document.querySelector('details');
  var r = {images: imgs.length, loaded: loaded, doc_width: document.documentElement.scrollWidth,
           viewport: window.innerWidth, spill: spill.slice(0, 20), details_open: d ? d.open : null,
           text: document.body.innerText};
  var out = document.createElement('pre'); out.id = 'render-check'; out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
});</script>"""


def chromium_or_skip() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed but CI=true: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return browser


def render(page: Path, tmp_path: Path, width: int = 1280, height: int = 1600) -> dict:
    """Open a copy of `page` (with the measuring script added) in headless Chromium; the measurements."""
    browser = chromium_or_skip()
    text = Path(page).read_text(encoding="utf-8")
    assert "<script" not in text, "the storyboard is plain HTML + CSS"
    probe = tmp_path / f"probe-{Path(page).name}"
    probe.write_text(text.replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    profile = tmp_path / f"profile-{Path(page).stem}"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                           f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="render-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))
