"""`modeldiff report` in real browsers: a report over real runs of every command on the organisms, opened
in headless Chromium (Playwright's Python package driving Debian's `chromium`; no browser download) and in
headless Firefox (Debian's `firefox-esr`, driven by Mozilla's own Marionette client, the `marionette_driver`
package: Playwright cannot drive a stock Firefox, only its own patched build, which cannot be downloaded here).

Runs are made once per session with small --max-samples into .pytest_cache (identical runs are reused by
every later session; any other run found there is removed first), plus a hand-written `interpret` run. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("MODELDIFF_REPORT_RUNS") or ROOT / ".pytest_cache" / "modeldiff-report-runs")
INSTALL = ("install Chromium and Playwright's Python package to run the browser tests: "
           "`apt-get install -y chromium` and `.venv/bin/pip install playwright` (no browser download needed)")
INSTALL_FIREFOX = ("install Firefox and Mozilla's Marionette client to run the Firefox browser tests: "
                   "`apt-get install -y firefox-esr` and `.venv/bin/pip install marionette_driver`")

COMMANDS = (
    ("info",),
    ("mine", "--max-samples", "8", "--top-k", "20", "--nmf-topics", "3"),
    ("mine", "--max-samples", "12", "--top-k", "20", "--nmf-topics", "3"),
    ("lens", "--max-samples", "4"),
    ("lens", "--max-samples", "6"),
    ("nll", "--max-samples", "4"),
    ("routing", "--max-samples", "4", "--sweep", "1,2"),  # the moe organism, with the mask sweep
    ("tokenlens", "attribute", "--max-samples", "2"),
    ("attribute", "--method", "delta-h,grad,bm25,random,zfused:bm25+grad"),  # the default's TrackStar: 6 s more
)


def _chromium() -> str:
    for cand in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if cand and Path(cand).is_file():
            return cand
    pytest.skip(f"no Chromium found; {INSTALL}")


@pytest.fixture(scope="session")
def browser():
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"playwright is not installed; {INSTALL}")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--allow-file-access-from-files"])
        yield b
        b.close()


def _interpret_run(root: Path) -> None:
    run = root / "interpret" / "cake-base_vs_cake-ft" / "base-11111111"
    run.mkdir(parents=True, exist_ok=True)
    feats = {"features": [{"id": i, "name": f"feature {i}", "kind": "direction", "layer": i % 2, "tokens": [" cake", " oven"],
                           "suppressed": [" rain"], "categories": ["baking"], "side": "ft", "examples": ["we bake a cake"],
                           "causal": {"z": 3.5 - i}, "steering": {"ok": True}} for i in range(4)]}
    (run / "features.json").write_text(json.dumps(feats))
    (run / "report.html").write_text("<!DOCTYPE html><html><body><h1>interpret report</h1><p>4 features</p></body></html>")
    (run / "summary.json").write_text(json.dumps({
        "command": "interpret", "config": {}, "headline": {"features": 4, "top_feature": "feature 0"},
        "lines": ["4 features"], "artifacts": [
            {"path": "features.json", "kind": "payload", "description": "features", "bytes": 1},
            {"path": "report.html", "kind": "html", "description": "report", "bytes": 1}]}))


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    from typer.testing import CliRunner

    from modeldiff_cli.cli import app
    from modeldiff_cli.report import build_report

    runner = CliRunner()
    made = set()
    for args in COMMANDS:
        res = runner.invoke(app, [*args, "--out", str(RUNS)])
        assert res.exit_code == 0, (args, res.stdout, res.stderr)
        made.add(Path(res.stdout.strip().splitlines()[-1]).resolve())
    # the runs folder outlives sessions (identical runs are reused): runs an earlier session made with other
    # options or older code are removed, so the report holds this session's runs alone
    for summary in list(RUNS.glob("*/*/*/summary.json")):
        if summary.parent.resolve() not in made:
            shutil.rmtree(summary.parent)
    _interpret_run(RUNS)
    partial = RUNS / "mine" / "cake-base_vs_cake-ft" / ".base-logits-00000000.partial-1"
    partial.mkdir(parents=True, exist_ok=True)
    out = tmp_path_factory.mktemp("report")
    result = build_report([RUNS], out)
    assert {r.command for r in result.runs} >= {"info", "mine", "lens", "nll", "routing", "tokenlens", "attribute",
                                                "interpret"}
    return result


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.modeldiffReady === true")
    return page, errors


def _non_blank(page, path: Path) -> None:
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)
    img = Image.open(io.BytesIO(path.read_bytes())).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 50 and len(img.getcolors(1 << 16) or []) > 8, f"blank screenshot {path}"


def _check_tables(page) -> None:
    """Each table with a filter box filters, and clicking a header sorts (column marked and rows ordered)."""
    n = page.locator("table.data").count()
    for i in range(min(n, 12)):
        th = page.locator("table.data").nth(i).locator("th").first
        th.click()
        assert "asc" in (th.get_attribute("class") or "")
        th.click()
        assert "desc" in (th.get_attribute("class") or "")
    boxes = page.locator("input.tfilter")
    for i in range(min(boxes.count(), 6)):
        box = boxes.nth(i)
        tid = box.get_attribute("data-for")
        box.fill("zzzz-no-such-row")
        visible = page.evaluate(f"Array.from(document.getElementById('{tid}').tBodies[0].rows).filter(r=>r.style.display!=='none').length")
        assert visible == 0
        box.fill("")


def test_index_lists_every_run_sorts_and_filters(browser, report, tmp_path):
    page, errors = _open(browser, report.index)
    hrefs = page.eval_on_selector_all("tr.runrow a", "els => els.map(e => e.getAttribute('href'))")
    assert sorted(hrefs) == sorted(f"runs/{r.id}.html" for r in report.runs)
    assert "partial" in page.content() and ".base-logits-00000000.partial-1" in page.content()
    page.fill("#filter", "routing")
    shown = page.eval_on_selector_all("tr.runrow", "els => els.filter(e => e.style.display !== 'none').map(e => e.dataset.command)")
    assert shown and set(shown) == {"routing"}
    page.fill("#filter", "")
    page.select_option("#cmd", "lens")
    shown = page.eval_on_selector_all("tr.runrow", "els => els.filter(e => e.style.display !== 'none').map(e => e.dataset.command)")
    assert shown == ["lens", "lens"]
    page.select_option("#cmd", "")
    # the pair's info facts head its group (from the info run)
    cake = page.locator("section.pair", has=page.locator("h2", has_text="cake-base_vs_cake-ft"))
    facts = cake.locator("div.pairfacts table.facts").inner_text()
    assert "LlamaForCausalLM" in facts and "layers" in facts and "parameters" in facts
    assert "identical" in cake.locator("div.pairfacts").inner_text()
    th = page.locator("section.pair").first.locator("th", has_text="command")
    th.click()
    _check_tables(page)
    _non_blank(page, tmp_path / "index.png")
    assert not errors, errors
    page.close()


def test_every_run_page_renders_without_errors(browser, report, tmp_path):
    swept = 0
    for run in report.runs:
        page, errors = _open(browser, report.out / "runs" / f"{run.id}.html")
        assert page.locator("h1").inner_text().startswith(run.command)
        if run.command in ("mine", "lens", "nll", "routing", "attribute"):
            assert page.locator("svg.chart").count() >= 1, run.id
        if run.command == "routing" and (run.path / "mask_sweep.csv").is_file():
            # the mask sweep: top experts vs the random control and its band
            swept += 1
            sweep = page.locator("h2", has_text="Mask sweep")
            assert sweep.count() == 1, run.id
            assert page.locator("svg.chart polygon.band").count() >= 2, run.id
            assert "mask sweep (none)" not in page.content()
        if run.command == "info":
            assert "LlamaForCausalLM" in page.locator("table.facts").inner_text()
        if run.command in ("tokenlens", "interpret"):
            assert page.locator("iframe.embed").count() >= 1, run.id
        _check_tables(page)
        # nothing wider than the window: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280, run.id
        _non_blank(page, tmp_path / f"{run.id}.png")
        assert not errors, (run.id, errors)
        assert not run.warnings, (run.id, run.warnings)
        page.close()
    assert swept >= 1  # a real `routing --sweep` run was rendered


def test_comparison_shows_both_runs(browser, report, tmp_path):
    for command in ("mine", "lens"):
        ids = [r.id for r in report.runs if r.command == command][:2]
        assert len(ids) == 2
        page, errors = _open(browser, report.out / f"compare-{command}.html")
        page.goto((report.out / f"compare-{command}.html").resolve().as_uri() + "#" + ",".join(ids))
        page.wait_for_function("window.modeldiffReady === true")
        page.wait_for_selector(".cmprun")
        got = page.eval_on_selector_all(".cmprun", "els => els.map(e => e.dataset.id)")
        assert got == ids
        if command == "mine":
            assert page.locator("tr.shared").count() > 0  # the two datasets' shared top tokens are marked
        else:
            assert page.locator("polyline.series").count() == 2  # two lens curves on one plot
        _non_blank(page, tmp_path / f"compare-{command}.png")
        assert not errors, errors
        page.close()


# --- Firefox (firefox-esr) over Marionette, driven by Mozilla's `marionette_driver` -----------------------


def _firefox_exe() -> str:
    for cand in (os.environ.get("FIREFOX"), shutil.which("firefox-esr"), shutil.which("firefox"), "/usr/bin/firefox-esr"):
        if cand and Path(cand).is_file():
            return cand
    pytest.skip(f"no Firefox found; {INSTALL_FIREFOX}")


@pytest.fixture(scope="session")
def firefox(tmp_path_factory):
    """A headless Firefox started by marionette_driver with a throwaway profile (made and removed by mozprofile)."""
    exe = _firefox_exe()
    try:
        with warnings.catch_warnings():  # mozinfo/mozrunner, imported by it, use deprecated distro/telnetlib calls
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette
    except ImportError:
        pytest.skip(f"marionette_driver is not installed; {INSTALL_FIREFOX}")
    work = tmp_path_factory.mktemp("firefox")
    # port=0: a free port for this Firefox (several may run at once); the profile and gecko.log go to `work`
    ff = Marionette(bin=exe, app="fxdesktop", port=0, headless=True, workspace=str(work),
                    gecko_log=str(work / "gecko.log"))
    try:
        ff.start_session()
        ff.set_window_rect(width=1280, height=900)
        yield ff
    finally:
        ff.cleanup()  # ends the session, stops Firefox, deletes the profile


def _js(ff, script: str):
    # sandbox=None: the script runs in the page's own window, so it sees the page's globals
    # (window.modeldiffErrors, window.modeldiffReady); marionette_driver's default sandbox sees the DOM only
    return ff.execute_script(script, sandbox=None)


def _ff_open(ff, path: Path) -> None:
    from marionette_driver import errors
    from marionette_driver.wait import Wait

    ff.navigate(path.resolve().as_uri())
    try:
        Wait(ff, timeout=10, interval=0.05).until(lambda m: _js(m, "return window.modeldiffReady === true"))
    except errors.TimeoutException:
        raise AssertionError(f"{path.name}: the page's script never finished in Firefox "
                             f"(errors: {_js(ff, 'return window.modeldiffErrors || []')})") from None


def _ff_screenshot(ff, path: Path) -> None:
    path.write_bytes(ff.screenshot(format="binary", full=True))


def _png_non_blank(path: Path) -> None:
    from PIL import Image

    img = Image.open(path).convert("L")
    lo, hi = img.getextrema()
    assert img.size[0] >= 1000 and hi - lo > 50 and len(img.getcolors(1 << 16) or []) > 8, f"blank screenshot {path}"


def test_firefox_index(firefox, report, tmp_path):
    _ff_open(firefox, report.index)
    assert _js(firefox, "return window.modeldiffErrors") == []
    hrefs = _js(firefox, "return Array.from(document.querySelectorAll('tr.runrow a')).map(e => e.getAttribute('href'))")
    assert sorted(hrefs) == sorted(f"runs/{r.id}.html" for r in report.runs)
    shown = _js(firefox, """const f = document.getElementById('filter'); f.value = 'routing';
        f.dispatchEvent(new Event('input'));
        return Array.from(document.querySelectorAll('tr.runrow')).filter(e => e.style.display !== 'none')
                    .map(e => e.dataset.command);""")
    assert shown and set(shown) == {"routing"}
    order = _js(firefox, """const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));
        const t = document.querySelector('section.pair table.data'), th = t.querySelectorAll('th')[3];
        th.click(); th.click();
        return [th.className, Array.from(t.tBodies[0].rows).map(r => r.cells[3].textContent)];""")
    assert order[0] == "desc" and order[1] == sorted(order[1], reverse=True)
    assert "LlamaForCausalLM" in _js(firefox, "return document.querySelector('div.pairfacts').textContent")
    _ff_screenshot(firefox, tmp_path / "firefox-index.png")
    _png_non_blank(tmp_path / "firefox-index.png")


def test_firefox_run_page(firefox, report, tmp_path):
    run = next(r for r in report.runs if r.command == "routing" and (r.path / "mask_sweep.csv").is_file())
    _ff_open(firefox, report.out / "runs" / f"{run.id}.html")
    assert _js(firefox, "return window.modeldiffErrors") == []
    assert _js(firefox, "return document.querySelector('h1').textContent").startswith("routing")
    # the charts outside hidden tabs are laid out (SVG sized by Firefox, not collapsed)
    charts = _js(firefox, """return Array.from(document.querySelectorAll('svg.chart'))
        .filter(s => s.closest('[style*="display: none"]') === null)
        .map(s => { const b = s.getBoundingClientRect(); return [b.width, b.height]; })""")
    assert len(charts) >= 6 and all(w > 100 and h > 50 for w, h in charts), charts
    assert _js(firefox, "return document.querySelectorAll('svg.chart polygon.band').length") >= 2
    _ff_screenshot(firefox, tmp_path / "firefox-routing.png")
    _png_non_blank(tmp_path / "firefox-routing.png")
