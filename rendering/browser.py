"""Headless Chromium on a page: a screenshot, and the computed style of every piece of text
(font size, colour, the background it is drawn on), for checking that a page reads as meant.

Chromium runs in its own session with its output in a file, so a hung browser cannot block
the caller; it is killed at ``timeout``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--virtual-time-budget=5000")
# Every element with its own visible text: font size (px), text colour, and the first
# non-transparent background up its ancestors (composited over white).
MEASURE = """<script id="smug-measure-script">(function () {
  function rgba(c) { const m = c.match(/[\\d.]+/g).map(Number); return m.length === 3 ? m.concat([1]) : m; }
  function background(el) {
    let out = [255, 255, 255], layers = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) layers.push(c);
    }
    for (const c of layers.reverse()) out = out.map((v, i) => c[3] * c[i] + (1 - c[3]) * v);
    return out;
  }
  const rows = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.id === 'smug-measure-script') continue;
    const own = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
    const r = el.getBoundingClientRect();
    if (!own || r.width === 0 || r.height === 0) continue;
    if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true})) continue;  // e.g. a closed <details>
    const cs = getComputedStyle(el);
    rows.push({tag: el.tagName.toLowerCase(), cls: el.getAttribute('class') || '', text: own.slice(0, 80),
               top: r.top + window.scrollY,
               size: parseFloat(cs.fontSize), color: rgba(cs.color).slice(0, 3), background: background(el)});
  }
  const pre = document.createElement('pre'); pre.id = 'smug-measure'; pre.textContent = JSON.stringify(rows);
  document.body.appendChild(pre);
})();</script>"""


def chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], profile: Path, timeout: float) -> str:
    browser = chromium()
    if browser is None:
        raise RuntimeError("no chromium binary on PATH")
    log = profile / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([browser, *FLAGS, f"--user-data-dir={profile / 'profile'}", *args],
                                stdout=out, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"chromium did not finish in {timeout:g} s") from None
    return log.read_text(errors="replace")


def screenshot(page: str | Path, out: str | Path, width: int = 1280, height: int = 2000,
               timeout: float = 120.0) -> Path:
    """A PNG of ``page`` (an HTML file) in a ``width`` x ``height`` window."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as work:
        _run([f"--screenshot={out.resolve()}", f"--window-size={width},{height}", Path(page).resolve().as_uri()],
             Path(work), timeout)
    if not out.is_file():
        raise RuntimeError("chromium wrote no screenshot")
    return out


def text_styles(page_html: str, width: int = 1280, timeout: float = 120.0) -> list[dict]:
    """Every visible piece of text of ``page_html`` as laid out by Chromium: ``tag``, ``cls``,
    ``text``, ``top`` (px from the page's top), ``size`` (px), ``color`` and ``background`` (RGB, the
    background composited over white)."""
    body_end = page_html.rfind("</body>")
    probe = page_html[:body_end] + MEASURE + page_html[body_end:] if body_end >= 0 else page_html + MEASURE
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "page.html"
        path.write_text(probe, encoding="utf-8")
        dom = _run(["--dump-dom", f"--window-size={width},2000", path.as_uri()], Path(work), timeout)
    found = re.search(r'<pre id="smug-measure">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError("the page's measurements are missing from chromium's DOM dump")
    return json.loads(html.unescape(found.group(1)))

