"""ATMCS on a real Alpaca Telescope: alpaca-simulators' telescope, a server obsq did not make (issue 24).

The limits stay obsq's (the simulator itself slews below the horizon); a slew is the device's
own, awaited until it says it has stopped; tracking is the device's; a mount that stops
answering mid-slew is a FAULT naming it and the call.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsq.csc.alpaca.address import parse_address
from obsq.csc.atmcs.alpaca import AlpacaMount
from obsq.csc.atmcs.csc import MOUNT_DEVICE_FAILED, ATMCSCsc
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.testing import wait_state

from .alpaca_sim import AlpacaSimulators
from .device_site import serving

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


def telescope_config() -> dict[str, Any]:
    """The simulator's own template telescope (parked, as it comes)."""
    import alpaca_simulators

    template = Path(alpaca_simulators.__file__).parent / "config" / "template.yaml"
    return dict(yaml.safe_load(template.read_text())["devices"]["telescope"][0])


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
    server = AlpacaSimulators(tmp_path, {"telescope": {0: telescope_config()}})
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def mount(sims: AlpacaSimulators) -> AsyncIterator[tuple[ATMCSCsc, Remote]]:
    clock = LoopClock()
    driver = AlpacaMount(parse_address(sims.url("telescope", 0)), clock, call_timeout_s=2.0)
    async with serving(lambda **kw: ATMCSCsc(driver=driver, **kw), "ATMCS", clock) as pair:
        yield pair


def device(sims: AlpacaSimulators, member: str) -> Any:
    url = f"http://127.0.0.1:{sims.port}/api/v1/telescope/0/{member}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["Value"]


async def test_the_mount_slews_and_tracks_on_the_device_within_obsq_s_limits(
    mount: tuple[ATMCSCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = mount
    assert device(sims, "atpark") is True
    await remote.command("start")  # unparks it
    await remote.command("enable")
    assert device(sims, "atpark") is False
    ack = await remote.command("moveToPosition", {"azimuth": -171.3, "elevation": 39.0}, timeout_s=120)
    assert ack.result == "at az -171.3 el 39"
    assert device(sims, "azimuth") == pytest.approx(188.7, abs=0.1)  # -171.3 on obsq's cable wrap
    assert device(sims, "altitude") == pytest.approx(39.0, abs=0.1)
    assert remote.event("mountPosition").get() == {"azimuth": -171.3, "elevation": pytest.approx(39.0, abs=0.1)}
    await remote.command("startTracking")
    assert device(sims, "tracking") is True
    assert remote.event("atMountState").get() == {"state": 9}
    with pytest.raises(AckError, match="elevation 2 deg is beyond the limits 5 to 90 deg"):
        await remote.command("moveToPosition", {"azimuth": 0.0, "elevation": 2.0})
    assert device(sims, "altitude") == pytest.approx(39.0, abs=0.1)  # refused by obsq: the device never asked


async def test_a_mount_that_stops_answering_is_a_fault_naming_it(
    mount: tuple[ATMCSCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = mount
    await remote.command("start")
    await remote.command("enable")
    sims.pause()
    try:
        with pytest.raises(AckError, match=r"alpaca://127\.0\.0\.1:\d+/telescope/0 .*: no answer in time"):
            await remote.command("moveToPosition", {"azimuth": 10.0, "elevation": 60.0})
        await wait_state(remote, State.FAULT)
        assert remote.event("errorCode").get()["errorCode"] == MOUNT_DEVICE_FAILED
    finally:
        sims.resume()
    await remote.command("standby")
    await remote.command("start")
    await remote.command("enable")
    await remote.command("moveToPosition", {"azimuth": 10.0, "elevation": 60.0}, timeout_s=120)
    assert device(sims, "altitude") == pytest.approx(60.0, abs=0.1)
