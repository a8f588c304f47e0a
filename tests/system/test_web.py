"""The operator's page in a real browser: `obsq up` and `obsq web` as processes, Debian's chromium through Playwright.

Nothing downloads a browser: Playwright drives /usr/bin/chromium (CI installs Debian's package).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.brokers import MosquittoProcess, free_port

from .conftest import stop_processes
from .test_telescope import Telescope, telescope_broker  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

REQUIRE_CHROMIUM = os.environ.get("OBSQ_REQUIRE_CHROMIUM") == "1"
MEMBERS = ("ATCamera", "ATDome", "ATMCS", "ATSpectrograph", "ATWhiteLight", "OCPS:1", "ScriptQueue:2", "Scheduler:2")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if REQUIRE_CHROMIUM:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


class WebProcess:
    """`obsq web` as a child process on a free port."""

    def __init__(self, url: str, root: str, data: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"web-{root}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obsq.csc.cli", "web", "--broker", url, "--root", root, "--port",
                 str(self.port), "--data", str(data)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/api/me", timeout=2) as answer:
                    json.load(answer)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"obsq web did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def close(self) -> None:
        stop_processes(self.process)


@pytest.fixture
def site(telescope_broker: MosquittoProcess, root: str, tmp_path: Path) -> Iterator[tuple[Telescope, WebProcess]]:  # noqa: F811
    chromium()
    up = Telescope(telescope_broker.url, root, tmp_path / "data")
    web = WebProcess(telescope_broker.url, root, tmp_path / "data")
    yield up, web
    web.close()
    up.close()


def member_pid(root: str, name: str) -> int:
    """The process of `obsq csc run NAME` under this test's root (the supervisor's child)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "run" in words and name in words and root in words:
            return int(entry.name)
    raise AssertionError(f"no process runs {name} under root {root}")


def login(page: Any, base: str, user: str) -> None:
    page.goto(base)
    page.fill("#login-user", user)
    page.click("#login-button")
    page.wait_for_selector(f"#session-user:has-text('{user} (')")


def history_states(page: Any) -> list[tuple[str, str, str]]:
    rows = page.locator("#history tbody tr").all()
    return [(r.locator("td").nth(1).inner_text(), r.locator("td").nth(2).inner_text(),
             r.locator("td").nth(3).inner_text()) for r in rows]  # fmt: skip


def test_an_operator_runs_the_queue_from_the_page_and_an_observer_only_watches(
    site: tuple[Telescope, WebProcess], root: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, web = site
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            login(page, web.base, "operator")

            # every member of the observatory is shown ENABLED and alive
            for member in MEMBERS:
                row = page.locator(f"#components tr[data-component='{member}']")
                expect(row.locator(".state")).to_have_text("ENABLED", timeout=120_000)
                expect(row.locator(".health")).to_have_text("alive", timeout=10_000)

            # BLOCK-309 through the form: its four scripts run to DONE
            page.select_option("#block-select", "BLOCK-309")
            page.click("#block-submit")
            expect(page.locator("#acks li").first).to_contain_text("addBlock", timeout=120_000)
            expect(page.locator("#acks li").first).to_contain_text("COMPLETE")
            deadline = time.monotonic() + 240
            while sum(1 for b, _, s in history_states(page) if b == "BLOCK-309" and s == "DONE") < 4:
                assert time.monotonic() < deadline, history_states(page)
                assert not any(s in ("FAILED", "STOPPED") for _, _, s in history_states(page)), history_states(page)
                page.wait_for_timeout(300)

            # an invalid form: the named error, and nothing sent
            sent = page.locator("#acks li").count()
            page.select_option("#block-select", "BLOCK-9001")
            page.fill("#block-filter", "SDSSr")
            page.fill("#block-exposure", "-1")
            page.click("#block-submit")
            expect(page.locator("#form-error")).to_contain_text(
                "block BLOCK-9001 configuration: field 'exposure': -1 is less than or equal to the minimum of 0"
                " (rule: exclusiveMinimum)"
            )
            page.select_option("#script-select", "true|sleep.py")
            page.fill("#script-sleep_for", "a while")
            page.click("#script-submit")
            expect(page.locator("#form-error")).to_contain_text(
                "script sleep.py: Sleep configuration: field 'sleep_for'"
            )
            assert page.locator("#acks li").count() == sent

            # pause and resume: a script added while paused waits, then runs
            page.click("#pause")
            expect(page.locator("#queue-state")).to_have_text("PAUSED", timeout=30_000)
            page.fill("#script-sleep_for", "360000")  # 10 min of clock time at 600x
            page.click("#script-submit")
            expect(page.locator("#queued tbody tr", has_text="sleep.py")).to_have_count(1, timeout=120_000)
            expect(page.locator("#current")).to_contain_text("no script running")
            page.click("#resume")
            expect(page.locator("#queue-state")).to_have_text("running", timeout=30_000)
            expect(page.locator("#current")).to_contain_text("sleep.py", timeout=60_000)
            expect(page.locator("#current .script-state")).to_have_text("RUNNING", timeout=60_000)

            # stop the running script
            page.locator("#current button.stop").click()
            expect(page.locator("#history tbody tr").first).to_contain_text("sleep.py", timeout=60_000)
            expect(page.locator("#history tbody tr").first.locator(".outcome")).to_have_text("STOPPED")

            # a form gives ts_xml-style units, an object's fields' too
            page.select_option("#script-select", "true|auxtel/offset_atcs.py")
            expect(page.locator("#script-fields")).to_contain_text("object {x [arcsec], y [arcsec]}")

            # one image through the script form: its preview decodes
            page.select_option("#script-select", "true|auxtel/take_image_latiss.py")
            page.select_option("#script-image_type", "BIAS")
            page.fill("#script-nimages", "1")
            page.click("#script-submit")
            image = page.locator("#images img").first
            expect(image).to_be_visible(timeout=120_000)
            page.wait_for_function("() => { const i = document.querySelector('#images img');"
                                   " return i && i.complete && i.naturalWidth > 100; }", timeout=60_000)  # fmt: skip

            # a killed component is "gone" at once: its broker delivers its last will, no heartbeat has to go stale
            # first (which would read "not responding"); the time it took is printed, not asserted (a shared machine)
            row = page.locator("#components tr[data-component='ATSpectrograph'] .health")
            expect(row).to_have_text("alive")
            os.kill(member_pid(root, "ATSpectrograph"), signal.SIGKILL)
            killed = time.monotonic()
            expect(row).to_have_text("gone (connection lost)", timeout=30_000)
            print(f"ATSpectrograph killed: shown gone after {time.monotonic() - killed:.2f} s")
            assert errors == []

            # an observer sees everything and commands nothing
            watcher = browser.new_context().new_page()
            login(watcher, web.base, "observer")
            expect(watcher.locator("#components tr[data-component='ScriptQueue:2'] .state")).to_have_text("ENABLED")
            expect(watcher.locator("#history tbody tr").first).to_be_visible()
            assert watcher.locator("button.cmd:visible").count() == 0
            assert not watcher.locator("#block-form").is_visible()
            answer = watcher.request.post(f"{web.base}/api/command", data={"component": "ScriptQueue:2",
                                                                          "command": "pause"})  # fmt: skip
            assert answer.status == 403
            assert "observer observes" in answer.json()["error"]
        finally:
            browser.close()


@pytest.fixture
def slow_site(telescope_broker: MosquittoProcess, root: str, tmp_path: Path) -> Iterator[tuple[Telescope, WebProcess]]:  # noqa: F811
    """The observatory at 60x (a 900 s warm-up in 15 s), so a person could watch it: and the test can."""
    chromium()
    up = Telescope(telescope_broker.url, root, tmp_path / "data", "--speed", "60")
    web = WebProcess(telescope_broker.url, root, tmp_path / "data")
    yield up, web
    web.close()
    up.close()


def seen_while(page: Any, selector: str, until: Any, limit_s: float) -> list[str]:
    """The distinct texts of `selector` while `until()` is false (polled every 100 ms, at most `limit_s`)."""
    seen: list[str] = []
    deadline = time.monotonic() + limit_s
    while not until():
        assert time.monotonic() < deadline, seen
        text = page.locator(selector).inner_text() if page.locator(selector).count() else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        page.wait_for_timeout(100)
    return seen


def test_the_page_explains_a_failure_commands_a_component_and_shows_the_devices_and_the_clock(
    slow_site: tuple[Telescope, WebProcess], tmp_path: Path
) -> None:
    """The operator's recovery, all from the page: ATDome put in STANDBY, BLOCK-309 fails on it (the reason where
    the operator looks), ATDome started and enabled from its row, the flat position reached (the dome's azimuth
    moving); the lamp's warm-up counting down; the clock simulated at 60x; nothing wider than its panel."""
    from playwright.sync_api import expect, sync_playwright

    _, web = slow_site
    shots = Path(os.environ.get("OBSQ_SCREENSHOTS", tmp_path))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            login(page, web.base, "operator")
            for member in MEMBERS:
                expect(page.locator(f"#components tr[data-component='{member}'] .state")).to_have_text(
                    "ENABLED", timeout=120_000
                )
            expect(page.locator("#clock")).to_contain_text("simulated, ×60", timeout=30_000)
            expect(page.locator("#scheduler-state")).to_contain_text("ENABLED: it queues the schedule's blocks")
            dome = page.locator("#components tr[data-component='ATDome']")

            # ATDome to STANDBY from its row: only the commands its state takes are offered, each ack said
            expect(dome.locator("button.state-cmd")).to_have_text(["disable"])
            dome.locator("button[data-command='disable']").click()
            expect(dome.locator(".state")).to_have_text("DISABLED", timeout=30_000)
            expect(dome.locator("button.state-cmd")).to_have_text(["enable", "standby"])
            dome.locator("button[data-command='standby']").click()
            expect(dome.locator(".state")).to_have_text("STANDBY", timeout=30_000)
            expect(page.locator("#toasts")).to_contain_text("ATDome standby: COMPLETE")

            # BLOCK-309: the lamp warms up (counting down on the observatory's clock), then prepare_for/flat fails
            page.select_option("#block-select", "BLOCK-309")
            page.click("#block-submit")
            lamp = "#devices dd[data-device='ATWhiteLight']"
            expect(page.locator(lamp)).to_contain_text("warm-up", timeout=120_000)
            countdown = seen_while(page, lamp, lambda: "warm-up" not in page.locator(lamp).inner_text(), 120)
            assert len({line.split("warm-up ")[1].split(" left")[0] for line in countdown}) >= 3, countdown
            page.screenshot(path=str(shots / "console-weekly.png"), full_page=True)
            expect(page.locator("#current .script-state")).to_have_text("FAILED", timeout=120_000)
            # the reason is drawn with the failure itself (the same render): read at once, nothing waited for
            assert "ATDome" in page.locator("#queue-why").inner_text()
            assert "ATDome" in page.locator("#current .why").inner_text()
            assert "FAILED" in page.locator("#toasts").inner_text()
            page.screenshot(path=str(shots / "console-failure.png"), full_page=True)

            # recovery from the page: ATDome started and enabled (acks said), the queue resumed, the flat position
            dome.locator("button[data-command='start']").click()
            expect(dome.locator(".state")).to_have_text("DISABLED", timeout=60_000)
            dome.locator("button[data-command='enable']").click()
            expect(dome.locator(".state")).to_have_text("ENABLED", timeout=30_000)
            expect(page.locator("#acks li").first).to_contain_text("ATDome enable: COMPLETE")
            page.click("#resume")
            expect(page.locator("#queue-state")).to_have_text("running", timeout=30_000)
            expect(page.locator("#queue-why")).to_have_text("")
            page.select_option("#script-select", "true|auxtel/prepare_for/flat.py")
            page.click("#script-submit")
            azimuth = "#devices dd[data-device='ATDome']"
            moving = seen_while(
                page, azimuth, lambda: any(s == "DONE" and p == "auxtel/prepare_for/flat.py"
                                           for _, p, s in history_states(page)), 240)  # fmt: skip
            assert moving[0].startswith("azimuth 0.0°"), moving  # where the dome was…
            expect(page.locator(azimuth)).to_contain_text("azimuth 3.0° (sent to 3.0°)")  # …and where it went
            expect(page.locator("#devices dd[data-device='ATMCS']")).to_contain_text("az 188.70° el 39.00°")

            # at 1400 x 900 nothing is wider than its panel, and the page does not scroll sideways
            wide = page.evaluate("""() => [...document.querySelectorAll('section')]
                .filter((s) => s.scrollWidth > s.clientWidth + 1).map((s) => s.id)""")
            assert wide == []
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            assert errors == []
        finally:
            browser.close()
