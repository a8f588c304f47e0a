"""Where an INDI device is: `indi://host[:port]/Device Name`, parsed and checked, pure.

The device name is the INDI driver's own (`Filter Simulator`, `QHY CCD QHY600M-xxxx`); it may
hold spaces, written as they are or as %20. The port defaults to INDI's 7624.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from obsq.csc.core.errors import ValidationError

#: INDI's port.
DEFAULT_PORT = 7624
_HOST = re.compile(r"^[A-Za-z0-9:.\-]{1,253}$")
_DEVICE = re.compile(r"^[^\x00-\x1f\"<>&]{1,128}$")


@dataclass(frozen=True)
class IndiAddress:
    """One device on one INDI server."""

    host: str
    port: int
    device: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"indi://{host}:{self.port}/{self.device}"


def parse_address(text: str, *, what: str = "device") -> IndiAddress:
    """`indi://host[:port]/Device Name` as an IndiAddress; ValidationError naming `what` and the rule."""
    try:
        parts = urlsplit(text.replace(" ", "%20"))
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{what}: {text!r} is not an address ({exc})") from None
    if parts.scheme != "indi":
        raise ValidationError(f"{what}: {text!r} is not an INDI address (rule: indi://host:port/Device Name)")
    host = parts.hostname or ""
    if not _HOST.match(host):
        raise ValidationError(f"{what}: {text!r} has no valid host name")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"{what}: {text!r}: an INDI address has no user, query or fragment")
    device = unquote(parts.path.lstrip("/"))
    if not device or "/" in device or not _DEVICE.match(device):
        raise ValidationError(f"{what}: {text!r} names no device (rule: indi://host:port/Device Name, one name)")
    return IndiAddress(host, port if port is not None else DEFAULT_PORT, device)
