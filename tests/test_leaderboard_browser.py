"""The leaderboard page in headless Debian Chromium: rows, charts, sorting, and a screenshot.

Fails (never skips) when Chromium or its driver is missing: CI installs them, so their absence is
a broken environment, not a reason to pass.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from codal_bench.leaderboard import compile_leaderboard, write_all
from codal_bench.store import Store
from tests.helpers_store import codal_item_ids, make_run, populate, random_codal

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOTES_COPY = Path("/work/notes/leaderboard.png")
SHOT_COPY = Path(os.environ.get("CODAL_SCREENSHOT_DIR", "/nonexistent")) / "leaderboard.png"

pytestmark = pytest.mark.slow


@pytest.fixture()
def driver(tmp_path: Path) -> Iterator[object]:
    for exe in (CHROMIUM, CHROMEDRIVER):
        assert Path(exe).exists(), f"{exe} missing: apt-get install chromium chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--window-size=1680,1000",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def test_page_in_chromium(tmp_path: Path, driver: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(driver, WebDriver)
    store = Store(tmp_path / "s.sqlite")
    ranked = populate(store, 6, per_preference=20, n_humaneval=40, seed=3)
    items = codal_item_ids(20)

    make_run(
        store,
        "vllm:/models/half-done",
        codal=random_codal(random.Random(0), items, 6),
        status="interrupted",
    )
    # a run at 0 % (its chart axes must stay inside 0–100 %) and long run names that must wrap
    # at separators only
    zero = make_run(
        store,
        "vllm:/models/all-wrong",
        codal=random_codal(random.Random(1), items, 2),
        humaneval={f"HumanEval/{i}": [(False, False)] for i in range(40)},
    )
    ranked.append(zero)
    for i, rid in enumerate(ranked[:3]):
        store.set_name(rid, f"nightly_{i}-" + "-".join(["checkpoint", "step"] * 3) + f"-{i}")
    lb = compile_leaderboard(store, n_boot=1000, seed=0)
    paths = write_all(lb, tmp_path / "out")
    html = tmp_path / "out" / "leaderboard.html"
    assert html in paths
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "<script src" not in text and "<link" not in text

    driver.get(html.as_uri())

    # Every complete run has a row; the interrupted one is not ranked.
    shown = {
        e.get_attribute("data-run-id")
        for e in driver.find_elements(By.CSS_SELECTOR, "tr[data-run-id]")
    }  # noqa: E501
    assert shown == set(ranked)
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr.published")) > 0

    # Charts rendered: SVGs with marks and a real size on screen.
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    kinds = {c.get_attribute("class") for c in charts}
    assert {"chart forest", "chart scatter"} <= kinds
    for c in charts:
        assert c.size["width"] > 100 and c.size["height"] > 50
        assert len(c.find_elements(By.CSS_SELECTOR, "circle, path")) > 0
    ours = driver.find_elements(By.CSS_SELECTOR, "section[data-kind] svg.chart circle")
    assert len(ours) >= 2 * len(ranked)  # each run: a dot per preference + average, and in scatter

    # Sorting by a column works, both ways.
    table = driver.find_element(By.CSS_SELECTOR, 'section[data-kind="codal-bench"] table.lb')
    head = table.find_element(By.CSS_SELECTOR, "th.h-codal-average")

    def column() -> list[float]:
        cells = table.find_elements(By.CSS_SELECTOR, "tbody td.c-codal-average")
        return [float(c.get_attribute("data-sort") or "nan") for c in cells]

    def models() -> list[str]:
        return [c.text for c in table.find_elements(By.CSS_SELECTOR, "tbody td.c-model")]

    before = models()
    head.click()  # first click on a score column: best first
    assert head.get_attribute("aria-sort") == "descending"
    assert column() == sorted(column(), reverse=True)
    head.click()
    assert head.get_attribute("aria-sort") == "ascending"
    assert column() == sorted(column())
    assert sorted(models()) == sorted(before) and models() != before
    table.find_element(By.CSS_SELECTOR, "th.h-model").click()  # text column: A→Z (locale order)
    names = [
        c.get_attribute("data-sort") for c in table.find_elements(By.CSS_SELECTOR, "td.c-model")
    ]
    assert names == driver.execute_script(
        "return arguments[0].slice().sort(function (a, b) { return a.localeCompare(b); });", names
    )
    head.click()  # back to best first for the screenshot
    assert head.get_attribute("aria-sort") == "descending"

    # Axes stay inside each metric's range (ratings 0–10, rates 0–100 %), read from the SVG.
    panels = driver.find_elements(By.CSS_SELECTOR, "svg.forest rect.panel")
    assert panels
    for panel in panels:
        lo_max = [float(panel.get_attribute(a) or "nan") for a in ("data-min", "data-max")]
        svg = panel.find_element(By.XPATH, "..")
        metric = panel.get_attribute("data-metric")
        ticks = [
            float(x.get_attribute("textContent") or "nan")
            for x in svg.find_elements(By.CSS_SELECTOR, f'text.tick[data-metric="{metric}"]')
        ]
        assert len(ticks) >= 2 and lo_max[0] <= min(ticks) and max(ticks) <= lo_max[1], (
            metric,
            ticks,
            lo_max,
        )
    scatter_ticks = driver.find_elements(By.CSS_SELECTOR, "svg.scatter text.tick")
    assert scatter_ticks
    for x in scatter_ticks:
        lo, hi = (float(x.get_attribute(a) or "nan") for a in ("data-min", "data-max"))
        tick = float(x.get_attribute("textContent") or "nan")
        assert lo <= tick <= hi, (tick, lo, hi)
    # Published-only tables are folded; our tables come first.
    folded = driver.find_elements(By.CSS_SELECTOR, "details.published-only")
    assert folded and all(d.get_attribute("open") is None for d in folded)
    chips = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav a")]
    assert any("judge" in c and "runs" in c for c in chips), chips

    # At 1400 px, no id or model name breaks inside a word: every line break inside one falls
    # right after a separator (or at a space).
    driver.set_window_size(1400, 1000)
    breaks = driver.execute_script(BREAKS_JS)
    wrapped = [(text, b) for text, b in breaks if b]
    assert wrapped, "expected some long run names to wrap at 1400 px"
    for text, pairs in breaks:
        for before, after in pairs:
            assert before in "-_/:.@+= " or after == " ", (text, before, after)
    names = [c.text.replace("\n", "") for c in driver.find_elements(By.CSS_SELECTOR, "td.c-run_id")]
    assert any(n.startswith("nightly_0-checkpoint") for n in names)

    # Full-page screenshot for a human to look at.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1680, min(int(height) + 40, 8000))
    driver.set_window_size(1400, min(int(height) + 40, 8000))
    shot = tmp_path / "leaderboard.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    for copy in (NOTES_COPY, SHOT_COPY):
        if copy.parent.is_dir():
            shutil.copyfile(shot, copy)


# For each span.id: the (char before, char after) of every line break inside it.
BREAKS_JS = """
const out = [];
for (const el of document.querySelectorAll("table.lb span.id")) {
  const pairs = []; let prevTop = null, prevChar = null;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const range = document.createRange(); let node;
  while ((node = walker.nextNode())) {
    const t = node.textContent;
    for (let i = 0; i < t.length; i++) {
      range.setStart(node, i); range.setEnd(node, i + 1);
      const rects = range.getClientRects();
      if (!rects.length) continue;
      const top = Math.round(rects[0].top);
      if (prevTop !== null && top > prevTop + 2) pairs.push([prevChar, t[i]]);
      prevTop = top; prevChar = t[i];
    }
  }
  out.push([el.textContent, pairs]);
}
return out;
"""
