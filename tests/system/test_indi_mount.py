"""ATMCS on INDI's own telescope simulator under indiserver (issue 24): alt/az through equatorial coordinates.

obsq's alt/az target goes to the telescope as RA/Dec of now at the device's own site (its
GEOGRAPHIC_COORD), with ON_COORD_SET SLEW; where it ends is read back from the device's RA/Dec
with INDI's own indi_getprop and turned into alt/az the same way; the limits stay obsq's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from obsq.csc.atmcs.csc import ATMCSCsc
from obsq.csc.atmcs.indi import TAI_MINUS_UTC_S, horizontal, sidereal_hours
from obsq.csc.clock import LoopClock, wall_tai
from obsq.csc.component import AckError, Remote
from obsq.csc.indi.client import IndiConnection

from .device_site import serving
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]
MOUNT = "Telescope Simulator"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndiServer]:
    indi = IndiServer(tmp_path, "indi_simulator_telescope")
    try:
        indi.start()
        yield indi
    finally:
        indi.stop()


@pytest.fixture
async def mount(server: IndiServer) -> AsyncIterator[tuple[ATMCSCsc, Remote]]:
    from obsq.csc.atmcs.indi import IndiMount

    clock = LoopClock()
    driver = IndiMount(IndiConnection("127.0.0.1", server.port, clock), MOUNT, clock)
    async with serving(lambda **kw: ATMCSCsc(driver=driver, **kw), "ATMCS", clock) as pair:
        yield pair


def pointing(server: IndiServer) -> tuple[float, float]:
    """Where the device says it points, as alt/az, read with INDI's own client."""
    ra, dec = (float(server.get(f"{MOUNT}.EQUATORIAL_EOD_COORD.{e}")) for e in ("RA", "DEC"))
    latitude, longitude = (float(server.get(f"{MOUNT}.GEOGRAPHIC_COORD.{e}")) for e in ("LAT", "LONG"))
    return horizontal(ra, dec, latitude, sidereal_hours(wall_tai() - TAI_MINUS_UTC_S, longitude))


async def test_the_mount_slews_to_alt_az_on_an_equatorial_indi_telescope(
    mount: tuple[ATMCSCsc, Remote], server: IndiServer
) -> None:
    _, remote = mount
    await remote.command("start")
    await remote.command("enable")
    ack = await remote.command("moveToPosition", {"azimuth": -171.3, "elevation": 39.0}, timeout_s=180)
    assert ack.result == "at az -171.3 el 39"
    await asyncio.sleep(2.0)  # not tracking: it stays at that alt/az while the sky turns
    azimuth, elevation = pointing(server)
    assert abs((azimuth - 188.7 + 180.0) % 360.0 - 180.0) < 0.3
    assert elevation == pytest.approx(39.0, abs=0.3)
    assert remote.event("mountPosition").get()["azimuth"] == -171.3
    await remote.command("startTracking")
    assert server.get(f"{MOUNT}.TELESCOPE_TRACK_STATE.TRACK_ON") == "On"
    await remote.command("stopTracking")
    with pytest.raises(AckError, match="elevation 2 deg is beyond the limits 5 to 90 deg"):
        await remote.command("moveToPosition", {"azimuth": 0.0, "elevation": 2.0})
