"""Where an Alpaca device is: `alpaca://host:port/devicetype/number`, parsed and checked, pure.

A site file names each device this way (issue 24); the client turns it into the device's base
URL, `http://host:port/api/v1/devicetype/number/`, under which every member is a GET or a PUT.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from obsq.csc.core.errors import ValidationError

#: The Alpaca device types (ASCOM's interface names, lower case, as in the URL).
DEVICE_TYPES = (
    "camera", "covercalibrator", "dome", "filterwheel", "focuser", "observingconditions", "rotator",
    "safetymonitor", "switch", "telescope",
)  # fmt: skip
#: The default port of an Alpaca server (ASCOM Remote and most simulators).
DEFAULT_PORT = 11111
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class AlpacaAddress:
    """One device on one Alpaca server."""

    host: str
    port: int
    device_type: str
    number: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api/v1/{self.device_type}/{self.number}/"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"alpaca://{host}:{self.port}/{self.device_type}/{self.number}"


def parse_address(text: str, *, expect: str | None = None, what: str = "device") -> AlpacaAddress:
    """`alpaca://host[:port]/devicetype/number` as an AlpacaAddress; ValidationError naming `what` and the rule.

    `expect` is the device type the caller drives (a filter wheel service takes no camera).
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{what}: {text!r} is not an address ({exc})") from None
    if parts.scheme != "alpaca":
        raise ValidationError(f"{what}: {text!r} is not an Alpaca address (rule: alpaca://host:port/devicetype/number)")
    host = parts.hostname or ""
    if not host or not (_is_ip(host) or _HOST.match(host)):
        raise ValidationError(f"{what}: {text!r} has no valid host name")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"{what}: {text!r}: an Alpaca address has no user, query or fragment")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2:
        raise ValidationError(f"{what}: {text!r} names no device (rule: alpaca://host:port/devicetype/number)")
    device_type, number = segments[0].lower(), segments[1]
    if device_type not in DEVICE_TYPES:
        raise ValidationError(f"{what}: device type {segments[0]!r} is not one of {', '.join(DEVICE_TYPES)}")
    if expect is not None and device_type != expect:
        raise ValidationError(f"{what}: {text!r} is a {device_type}, not a {expect}")
    if not number.isdigit() or len(number) > 6:
        raise ValidationError(f"{what}: device number {number!r} is not a whole number from 0")
    return AlpacaAddress(host, port if port is not None else DEFAULT_PORT, device_type, int(number))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
