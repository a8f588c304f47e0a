"""A run's hardware behind ASCOM Alpaca: obsq's served devices for `obsq weekly --alpaca` and `obsq up --alpaca`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from obsq.csc.clock import Clock, wall_tai
from obsq.csc.core.errors import UsageError
from obsq.csc.observatory import Observatory
from obsq.csc.served.faults import SERVED_INJECTIONS
from obsq.csc.served.server import ServedAlpaca


async def serve_devices(
    stack: contextlib.AsyncExitStack, observatory: Observatory, inject: Sequence[str], wall: Clock
) -> ServedAlpaca:
    """Start `obsq alpaca serve` for the observatory and put every hardware member on it (till `stack` closes).

    The server runs at the observatory's speed and epoch, with the run's faults; a fault the served
    devices cannot show is a UsageError.
    """
    unseen = [i for i in inject if i.partition("=")[0] not in SERVED_INJECTIONS]
    if unseen:
        raise UsageError(f"--inject {unseen[0]}: not a fault the served Alpaca devices can show (they take "
                         f"{', '.join(SERVED_INJECTIONS)})")  # fmt: skip
    observatory.epoch_tai = observatory.epoch(wall_tai())
    served = ServedAlpaca(observatory.data / "logs" / "alpaca.log", observatory.speed, observatory.epoch_tai, inject)
    stack.callback(served.stop)
    await served.start(wall)
    members = {cid.name for cid, _ in observatory.members}
    observatory.devices = {name: roles for name, roles in served.devices().items() if name in members}
    observatory.device_speed, observatory.inject = observatory.speed, ()
    return served
