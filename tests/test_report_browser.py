"""`modeldiff report` in real browsers: a report over real runs of every command on the organisms, opened
in headless Chromium (Playwright's Python package driving Debian's `chromium`; no browser download) and in
headless Firefox (Debian's `firefox-esr`, driven over its own Marionette protocol: a few lines of socket code
below, since Playwright cannot drive a stock Firefox).

Runs are made once per session with small --max-samples into .pytest_cache (identical runs are reused by
every later session), plus a hand-written `interpret` run. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("MODELDIFF_REPORT_RUNS") or ROOT / ".pytest_cache" / "modeldiff-report-runs")
INSTALL = ("install Chromium and Playwright's Python package to run the browser tests: "
           "`apt-get install -y chromium` and `.venv/bin/pip install playwright` (no browser download needed)")
INSTALL_FIREFOX = "install Firefox to run the Firefox browser tests: `apt-get install -y firefox-esr`"

COMMANDS = (
    ("info",),
    ("mine", "--max-samples", "8", "--top-k", "20", "--nmf-topics", "3"),
    ("mine", "--max-samples", "12", "--top-k", "20", "--nmf-topics", "3"),
    ("lens", "--max-samples", "4"),
    ("lens", "--max-samples", "6"),
    ("nll", "--max-samples", "4"),
    ("routing", "--max-samples", "4", "--sweep", "1,2"),  # the moe organism, with the mask sweep
    ("tokenlens", "attribute", "--max-samples", "2"),
    ("attribute",),
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
    for args in COMMANDS:
        res = runner.invoke(app, [*args, "--out", str(RUNS)])
        assert res.exit_code == 0, (args, res.stdout, res.stderr)
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


# --- Firefox (firefox-esr) over Marionette ------------------------------------------------------------------


class Marionette:
    """A headless Firefox with a throwaway profile, driven over Marionette (length-prefixed JSON on a socket)."""

    def __init__(self, exe: str, profile: Path) -> None:
        with socket.socket() as s:  # a free port for this Firefox (several may run at once)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text(
            f'user_pref("marionette.port", {port});\n'
            'user_pref("browser.shell.checkDefaultBrowser", false);\n'
            'user_pref("datareporting.policy.dataSubmissionEnabled", false);\n'
            'user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);\n')
        self.proc = subprocess.Popen([exe, "--headless", "--marionette", "--no-remote", "-profile", str(profile),
                                      "--window-size=1280,900"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "MOZ_HEADLESS": "1"})
        self.buf, self.msg_id = b"", 0
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    pytest.fail(f"Firefox did not open Marionette on port {port} (exit {self.proc.returncode})")
                time.sleep(0.05)
        self._recv()  # the server's hello
        self.cmd("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})

    def _recv(self):
        while b":" not in self.buf:
            self.buf += self._read()
        size, rest = self.buf.split(b":", 1)
        while len(rest) < int(size):
            rest += self._read()
        self.buf = rest[int(size):]
        return json.loads(rest[:int(size)])

    def _read(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("Firefox closed the Marionette connection")
        return chunk

    def cmd(self, name: str, params: dict | None = None):
        self.msg_id += 1
        data = json.dumps([0, self.msg_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            _, mid, error, result = self._recv()
            if mid == self.msg_id:
                break
        if error:
            raise AssertionError(f"Firefox {name}: {error.get('error')}: {error.get('message')}")
        return result

    def js(self, script: str, *args):
        return self.cmd("WebDriver:ExecuteScript", {"script": script, "args": list(args)})["value"]

    def open(self, path: Path) -> None:
        self.cmd("WebDriver:Navigate", {"url": path.resolve().as_uri()})
        for _ in range(100):
            if self.js("return window.modeldiffReady === true"):
                return
            time.sleep(0.05)
        raise AssertionError(f"{path.name}: the page's script never finished in Firefox "
                             f"(errors: {self.js('return window.modeldiffErrors || []')})")

    def screenshot(self, path: Path) -> None:
        shot = self.cmd("WebDriver:TakeScreenshot", {"full": True, "hash": False})
        path.write_bytes(base64.b64decode(shot["value"]))

    def close(self) -> None:
        try:
            self.cmd("Marionette:Quit", {"flags": ["eForceQuit"]}) if hasattr(self, "sock") else None
        except (OSError, ConnectionError, AssertionError, ValueError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _firefox_exe() -> str:
    for cand in (os.environ.get("FIREFOX"), shutil.which("firefox-esr"), shutil.which("firefox"), "/usr/bin/firefox-esr"):
        if cand and Path(cand).is_file():
            return cand
    pytest.skip(f"no Firefox found; {INSTALL_FIREFOX}")


@pytest.fixture(scope="session")
def firefox(tmp_path_factory):
    ff = Marionette(_firefox_exe(), tmp_path_factory.mktemp("firefox-profile"))
    yield ff
    ff.close()


def _png_non_blank(path: Path) -> None:
    from PIL import Image

    img = Image.open(path).convert("L")
    lo, hi = img.getextrema()
    assert img.size[0] >= 1000 and hi - lo > 50 and len(img.getcolors(1 << 16) or []) > 8, f"blank screenshot {path}"


def test_firefox_index(firefox, report, tmp_path):
    firefox.open(report.index)
    assert firefox.js("return window.modeldiffErrors") == []
    hrefs = firefox.js("return Array.from(document.querySelectorAll('tr.runrow a')).map(e => e.getAttribute('href'))")
    assert sorted(hrefs) == sorted(f"runs/{r.id}.html" for r in report.runs)
    shown = firefox.js("""const f = document.getElementById('filter'); f.value = 'routing';
        f.dispatchEvent(new Event('input'));
        return Array.from(document.querySelectorAll('tr.runrow')).filter(e => e.style.display !== 'none')
                    .map(e => e.dataset.command);""")
    assert shown and set(shown) == {"routing"}
    order = firefox.js("""const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));
        const t = document.querySelector('section.pair table.data'), th = t.querySelectorAll('th')[3];
        th.click(); th.click();
        return [th.className, Array.from(t.tBodies[0].rows).map(r => r.cells[3].textContent)];""")
    assert order[0] == "desc" and order[1] == sorted(order[1], reverse=True)
    assert "LlamaForCausalLM" in firefox.js("return document.querySelector('div.pairfacts').textContent")
    firefox.screenshot(tmp_path / "firefox-index.png")
    _png_non_blank(tmp_path / "firefox-index.png")


def test_firefox_run_page(firefox, report, tmp_path):
    run = next(r for r in report.runs if r.command == "routing" and (r.path / "mask_sweep.csv").is_file())
    firefox.open(report.out / "runs" / f"{run.id}.html")
    assert firefox.js("return window.modeldiffErrors") == []
    assert firefox.js("return document.querySelector('h1').textContent").startswith("routing")
    # the charts outside hidden tabs are laid out (SVG sized by Firefox, not collapsed)
    charts = firefox.js("""return Array.from(document.querySelectorAll('svg.chart'))
        .filter(s => s.closest('[style*="display: none"]') === null)
        .map(s => { const b = s.getBoundingClientRect(); return [b.width, b.height]; })""")
    assert len(charts) >= 6 and all(w > 100 and h > 50 for w, h in charts), charts
    assert firefox.js("return document.querySelectorAll('svg.chart polygon.band').length") >= 2
    firefox.screenshot(tmp_path / "firefox-routing.png")
    _png_non_blank(tmp_path / "firefox-routing.png")
