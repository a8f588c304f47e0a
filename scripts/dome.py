"""The dome as scripts use it, as Rubin's ATCS does: home it, close it, open the main door, move the dropout door.

Each waits for the door or axis to get there (Rubin's ATCS allows 600 s for a shutter) and
does nothing, saying so, when it is already there.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.component import Remote
from obsq.csc.core.enums import DoorState
from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript

#: How long a shutter motion may take (Rubin's ATCS open_dome_shutter_time).
SHUTTER_TIMEOUT_S = 600.0
HOME_TIMEOUT_S = 300.0
#: What a shutter script says it takes (Rubin's open_dome metadata).
SHUTTER_METADATA_S = 240.0
EVENT_TIMEOUT_S = 10.0


class Dome:
    """ATDome, through a script's remote."""

    def __init__(self, script: BaseScript) -> None:
        self.remote: Remote = script.remote("ATDome")
        self.log = script.log

    async def _state(self, event: str) -> DoorState:
        try:
            data = await self.remote.event(event).aget(timeout_s=EVENT_TIMEOUT_S)
        except TimeoutError:
            raise ExpectedError(f"ATDome published no {event} within {EVENT_TIMEOUT_S:g} s") from None
        return DoorState(data["state"])

    async def is_homed(self) -> bool:
        try:
            data = await self.remote.event("azimuthState").aget(timeout_s=EVENT_TIMEOUT_S)
        except TimeoutError:
            raise ExpectedError(f"ATDome published no azimuthState within {EVENT_TIMEOUT_S:g} s") from None
        return bool(data["homed"])

    async def home(self, *, force: bool = False) -> None:
        """Home the azimuth axis unless it is homed already (or `force`)."""
        if not force and await self.is_homed():
            self.log.warning("dome_already_homed")
            return
        await self.remote.command("homeAzimuth", timeout_s=HOME_TIMEOUT_S)

    async def close(self) -> None:
        """Close both doors (closeShutter sequences them), as Rubin's close_dome(force=True).

        obsq has no ATPneumatics, so the M1 cover cannot be checked first: said in the log.
        """
        self.log.warning("closing_dome_without_m1_cover_state", reason="no ATPneumatics here")
        await self.remote.command("closeShutter", timeout_s=SHUTTER_TIMEOUT_S)

    async def open_main_door(self) -> None:
        """Open the main door (Rubin's open_dome_shutter), unless it is open already."""
        state = await self._state("mainDoorState")
        if state == DoorState.OPENED:
            self.log.info("main_door_already_open")
            return
        if state not in (DoorState.CLOSED, DoorState.PARTIALLYOPENED):
            raise ExpectedError(f"the main door is {state.name}; expected CLOSED, PARTIALLYOPENED or OPENED")
        await self.remote.command("moveShutterMainDoor", {"open": True}, timeout_s=SHUTTER_TIMEOUT_S)

    async def move_dropout_door(self, open_: bool) -> None:
        """Open or close the dropout door, unless it is there already."""
        if await self._state("dropoutDoorState") == (DoorState.OPENED if open_ else DoorState.CLOSED):
            self.log.info("dropout_door_already_there", open=open_)
            return
        await self.remote.command("moveShutterDropoutDoor", {"open": open_}, timeout_s=SHUTTER_TIMEOUT_S)


class DomeShutterScript(BaseScript):
    """A script that moves the dome's shutter one way: say what (`checkpoint_text`), do it (`move`)."""

    checkpoint_text = ""

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = Dome(self)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = SHUTTER_METADATA_S

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome.remote)
        await self.checkpoint(self.checkpoint_text)
        await self.move()

    async def move(self) -> None:
        raise NotImplementedError
