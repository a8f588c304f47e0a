"""Where the served devices are: the site's devices file that puts every hardware member on them (no imports)."""

from __future__ import annotations

import json


def device_urls(host: str, port: int) -> dict[str, dict[str, str]]:
    """The site's devices file for the served devices: every hardware component on them."""
    base = f"alpaca://{host}:{port}"
    return {
        "ATCamera": {"camera": f"{base}/camera/0"},
        "ATSpectrograph": {"filter": f"{base}/filterwheel/0", "disperser": f"{base}/filterwheel/1"},
        "ATDome": {"dome": f"{base}/dome/0"},
        "ATMCS": {"mount": f"{base}/telescope/0"},
        "ATWhiteLight": {"lamp": f"{base}/covercalibrator/0", "chiller": f"{base}/switch/0"},
    }


def devices_yaml(host: str, port: int) -> str:
    """The same as YAML (flow mappings, one component a line), for `obsq up --devices`."""
    return "".join(f"{name}: {json.dumps(roles)}\n" for name, roles in device_urls(host, port).items())
