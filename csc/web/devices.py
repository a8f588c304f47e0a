"""The devices as an operator reads them, pure: each component's latest device events, in a few lines.

`DeviceView.observe` keeps the latest payload of the topics below (and a trend of the dome's
azimuth and the chiller's supply temperature); `lines(obs_tai)` says, per component, where the
dome points against where it was sent, its doors, the mount's position and tracking, the lamp's
state and power with the warm-up or cool-down left, the lamp shutter and the chiller, the filter
and grating in the beam, and what the camera is doing with the current exposure's time left.
Times to come are counted on the observatory's clock (`obs_tai`: simulated or real).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The topics kept per component (events and the telemetry the trends read).
KEPT = {
    "ATDome": ("azimuthPosition", "azimuthCommandedState", "mainDoorState", "dropoutDoorState", "position"),
    "ATMCS": ("mountPosition", "atMountState"),
    "ATWhiteLight": ("lampState", "shutterState", "chillerTemperatures"),
    "ATSpectrograph": ("reportedFilterPosition", "reportedDisperserPosition"),
    "ATCamera": ("startIntegration", "endReadout", "startReadout", "imageStored"),
}
#: (component, telemetry, field) -> what a trend shows; points kept a trend.
TRENDS = {
    ("ATDome", "position", "azimuthPosition"): "dome azimuth (deg)",
    ("ATWhiteLight", "chillerTemperatures", "supplyTemperature"): "chiller supply (°C)",
}
TREND_POINTS = 240
DOOR = {1: "CLOSED", 2: "OPENED", 3: "PARTIALLY OPEN", 4: "OPENING", 5: "CLOSING"}
LAMP = {0: "UNKNOWN", 1: "OFF", 2: "ON", 3: "COOLDOWN", 4: "WARMUP", 5: "TURNING ON", 6: "TURNING OFF",
        7: "UNEXPECTEDLY ON", 8: "UNEXPECTEDLY OFF"}  # fmt: skip
SHUTTER = {0: "UNKNOWN", 1: "CLOSED", 2: "OPEN", 3: "MOVING"}
TRACKING = {8: "not tracking", 9: "tracking"}


def countdown(seconds: float) -> str:
    """`12:05 left` (or `1:02:03 left`) of a positive time.

    >>> countdown(725.2), countdown(3723)
    ('12:05 left', '1:02:03 left')
    """
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} left" if hours else f"{minutes}:{secs:02d} left"


@dataclass
class DeviceView:
    """The latest device events per component, and the trends."""

    latest: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    trends: dict[tuple[str, str, str], deque[tuple[float, float]]] = field(default_factory=dict)

    def observe(self, component: str, topic: str, data: dict[str, Any], tai: float) -> bool:
        """Keep `data` if the topic is one the page shows; whether it was."""
        if topic not in KEPT.get(component, ()):
            return False
        self.latest[(component, topic)] = data
        for name, telemetry, key in TRENDS:
            if (name, telemetry) == (component, topic) and isinstance(data.get(key), (int, float)):
                self.trends.setdefault((name, telemetry, key), deque(maxlen=TREND_POINTS)).append(
                    (tai, float(data[key]))
                )
        return True

    def _get(self, component: str, topic: str) -> dict[str, Any]:
        return self.latest.get((component, topic), {})

    def lines(self, obs_tai: float) -> dict[str, list[str]]:
        """What each component's devices are doing, as an operator reads it."""
        readers: dict[str, Callable[[], list[str]]] = {
            "ATDome": self._dome, "ATMCS": self._mount, "ATWhiteLight": lambda: self._lamp(obs_tai),
            "ATSpectrograph": self._spectrograph, "ATCamera": lambda: self._camera(obs_tai),
        }  # fmt: skip
        out = {}
        for name, read in readers.items():
            try:
                lines = read()
            except (KeyError, TypeError, ValueError) as exc:  # a payload without what it should have: said, not raised
                lines = [f"(an event could not be read: {type(exc).__name__} {exc})"]
            if lines:
                out[name] = lines
        return out

    def trend_rows(self) -> list[dict[str, Any]]:
        return [{"label": TRENDS[key], "points": [[round(t, 3), v] for t, v in points]}
                for key, points in self.trends.items()]  # fmt: skip

    def _dome(self) -> list[str]:
        where, sent = self._get("ATDome", "azimuthPosition"), self._get("ATDome", "azimuthCommandedState")
        lines = []
        if where:
            text = f"azimuth {where['azimuth']:.1f}°"
            if sent:
                text += f" (sent to {sent['azimuth']:.1f}°)"
            lines.append(text + ("" if where.get("homed", True) else ", not homed"))
        main, dropout = self._get("ATDome", "mainDoorState"), self._get("ATDome", "dropoutDoorState")
        if main or dropout:
            lines.append(f"main door {DOOR.get(main.get('state', 0), '?')}, dropout door "
                         f"{DOOR.get(dropout.get('state', 0), '?')}")  # fmt: skip
        return lines

    def _mount(self) -> list[str]:
        where, state = self._get("ATMCS", "mountPosition"), self._get("ATMCS", "atMountState")
        if not where:
            return []
        tracking = TRACKING.get(state.get("state", 0), "") if state else ""
        return [f"az {where['azimuth']:.2f}° el {where['elevation']:.2f}°" + (f", {tracking}" if tracking else "")]

    def _lamp(self, obs_tai: float) -> list[str]:
        lamp, shutter = self._get("ATWhiteLight", "lampState"), self._get("ATWhiteLight", "shutterState")
        chiller = self._get("ATWhiteLight", "chillerTemperatures")
        lines = []
        if lamp:
            text = f"lamp {LAMP.get(lamp['basicState'], '?')}"
            if lamp.get("setPower"):
                text += f" {lamp['setPower']:.0f} W"
            warm, cool = float(lamp.get("warmupEndTime") or 0), float(lamp.get("cooldownEndTime") or 0)
            if warm > obs_tai:
                text += f", warm-up {countdown(warm - obs_tai)}"
            elif cool > obs_tai:
                text += f", cool-down {countdown(cool - obs_tai)}"
            lines.append(text)
        if shutter:
            lines.append(f"lamp shutter {SHUTTER.get(shutter.get('actualState', 0), '?')}")
        if chiller:
            lines.append(f"chiller {chiller['supplyTemperature']:.1f} °C (set {chiller['setTemperature']:.1f} °C)")
        return lines

    def _spectrograph(self) -> list[str]:
        filter_, grating = (
            self._get("ATSpectrograph", "reportedFilterPosition"),
            self._get("ATSpectrograph", "reportedDisperserPosition"),
        )
        if not (filter_ or grating):
            return []
        return [f"filter {filter_.get('name') or '?'}, grating {grating.get('name') or '?'}"]

    def _camera(self, obs_tai: float) -> list[str]:
        started, read = self._get("ATCamera", "startIntegration"), self._get("ATCamera", "startReadout")
        stored = self._get("ATCamera", "imageStored")
        if not started:
            return []
        name = started["imageName"]
        if stored.get("imageName") == name:
            return [f"idle; last image {name} ({started.get('imageType', '')}, {started['exposureTime']:g} s)"]
        if read.get("imageName") == name:
            return [f"reading out {name}"]
        end = float(started.get("timestampAcquisitionStart") or 0) + float(started.get("exposureTime", 0.0))
        left = f", {countdown(end - obs_tai)}" if end > obs_tai else ""
        which = f" ({started['imageIndex']} of {started['imagesInSequence']})" if "imageIndex" in started else ""
        return [f"exposing {name}: {started.get('imageType', '')} {started['exposureTime']:g} s{which}{left}"]
