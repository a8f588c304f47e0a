"""Broker addresses: `mqtt://[user[:password]@]host[:port]` or `mqtts://…` for TLS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: The embedded broker's default address: loopback, and not 1883, so a site's own
#: Mosquitto on the standard port is never mistaken for it.
DEFAULT_BROKER_URL = "mqtt://127.0.0.1:18830"
BROKER_ENV = "OBSQ_BROKER"


@dataclass(frozen=True)
class BrokerUrl:
    """Where a broker is and how to authenticate to it."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @classmethod
    def parse(cls, text: str, *, ca_file: str | None = None) -> BrokerUrl:
        parts = urlsplit(text)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {text!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {text!r} has no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"broker URL {text!r}: port must be an integer 1-65535") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=ca_file,
        )

    @classmethod
    def default(cls) -> BrokerUrl:
        return cls.parse(os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
