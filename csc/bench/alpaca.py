"""`obsq bench alpaca`: the camera service's per-image overhead on an Alpaca camera, against the bare protocol.

The same camera, the same exposures, in one run, interleaved: the floor is the protocol alone
(StartExposure, CameraState and ImageReady polled, the image downloaded as ImageBytes, with
obsq's client and nothing else); obsq is `takeImages` through ATCamera on its Alpaca driver
(Rubin's events, the camera's keywords read, the FITS file written atomically and recorded).
The camera is the one `--url` names (a site's own), or alpaca-simulators' camera started here
on loopback (128x96 pixels unless --size; darks only, its lights query Gaia over the network).
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.bus.brokers import free_port
from obsq.csc.clock import LoopClock, blocking_sleep, perf_counter

#: Real seconds alpaca-simulators may take to answer after its start (it imports astropy and cabaret).
SIMULATOR_START_S = 120.0


class AlpacaSimulatorsProcess:
    """`python -m alpaca_simulators.run_simulator` on 127.0.0.1 with `devices` as its configuration."""

    def __init__(self, folder: Path, devices: dict[str, dict[int, dict[str, Any]]]) -> None:
        self.folder = folder
        self.devices = devices
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, device_type: str, number: int = 0) -> str:
        return f"alpaca://127.0.0.1:{self.port}/{device_type}/{number}"

    def start(self) -> None:
        """Start it and wait until it answers (RuntimeError with its log if it ends first)."""
        config = self.folder / "alpaca-simulators.yaml"
        config.write_text(yaml.safe_dump({"devices": self.devices}))
        log_path = self.folder / "alpaca-simulators.log"
        with log_path.open("wb") as log:
            argv = [sys.executable, "-m", "alpaca_simulators.run_simulator", "--host", "127.0.0.1",
                    "--port", str(self.port), "--config", str(config)]  # fmt: skip
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        first = next(iter(self.devices))
        probe = f"http://127.0.0.1:{self.port}/api/v1/{first}/0/connected"
        deadline = perf_counter() + SIMULATOR_START_S  # bounds a hang only: it starts in about 2 s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"alpaca-simulators ended: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(probe, timeout=2) as answer:  # loopback, our own server
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if perf_counter() > deadline:
                raise RuntimeError(f"alpaca-simulators did not answer within {SIMULATOR_START_S:g} s")
            blocking_sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a device that hangs)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def simulator_camera(width: int, height: int) -> dict[str, Any]:
    """alpaca-simulators' own template camera, `width` x `height` pixels; ImportError if it is not installed."""
    spec = importlib.util.find_spec("alpaca_simulators")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("alpaca-simulators is not installed")
    template = Path(next(iter(spec.submodule_search_locations))) / "config" / "template.yaml"
    camera = dict(yaml.safe_load(template.read_text())["devices"]["camera"][0])
    return camera | {"cameraxsize": width, "cameraysize": height, "numx": width, "numy": height, "pixel_defects": {}}


@dataclass(frozen=True)
class AlpacaBenchOptions:
    """`obsq bench alpaca`: the camera, how many darks of what exposure, and the simulator's size."""

    url: str | None = None
    images: int = 10
    exptime_s: float = 1.0
    size: tuple[int, int] = (128, 96)


async def _bare(url: str, exptime_s: float) -> float:
    """Seconds for one dark through the protocol alone."""
    from obsq.csc.alpaca.address import parse_address
    from obsq.csc.alpaca.client import AlpacaDevice

    camera = AlpacaDevice(parse_address(url, expect="camera"))
    clock = LoopClock()
    try:
        await camera.put("connected", Connected=True)
        t0 = perf_counter()
        await camera.put("startexposure", Duration=exptime_s, Light=False)
        while await camera.get("camerastate") in (1, 2) or not await camera.get("imageready"):
            await clock.sleep(0.1)
        await camera.image()
        return perf_counter() - t0
    finally:
        await camera.close()


async def _through_obsq(url: str, exptime_s: float, data: Path) -> float:
    """Seconds for one dark through ATCamera's takeImages on its Alpaca driver (file written and recorded)."""
    from obsq.csc.alpaca.address import parse_address
    from obsq.csc.atcamera.alpaca import AlpacaCamera
    from obsq.csc.atcamera.csc import ATCameraCsc
    from obsq.csc.atcamera.illumination import ObservatoryState
    from obsq.csc.atcamera.sim import StaticObservatory
    from obsq.csc.bus.memory import MemoryBroker
    from obsq.csc.component import Remote

    clock = LoopClock()
    driver = AlpacaCamera(parse_address(url, expect="camera"), StaticObservatory(ObservatoryState(0.0)), clock)
    broker = MemoryBroker()
    csc = ATCameraCsc(driver=driver, data_dir=data, bus=broker.client("csc"), clock=clock, root="bench")
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, "ATCamera", clock=clock, root="bench") as remote:
        await remote.command("start")
        await remote.command("enable")
        t0 = perf_counter()
        data_ = {"numImages": 1, "expTime": exptime_s, "shutter": False, "imageType": "DARK"}
        await remote.command("takeImages", data_, timeout_s=exptime_s + 300)
        return perf_counter() - t0


async def run_alpaca_benchmark(options: AlpacaBenchOptions) -> int:
    """The `obsq bench alpaca` command."""
    server: AlpacaSimulatorsProcess | None = None
    with tempfile.TemporaryDirectory() as tmp:
        url = options.url
        if url is None:
            try:
                camera = simulator_camera(*options.size)
            except ImportError:
                print("obsq bench alpaca: give --url alpaca://HOST:PORT/camera/N, or pip install alpaca-simulators")
                return 2
            server = AlpacaSimulatorsProcess(Path(tmp), {"camera": {0: camera}})
            await asyncio.to_thread(server.start)
            url = server.url("camera")
        try:
            bare, ours = [], []
            for i in range(options.images):  # interleaved: both see the same camera and machine
                bare.append(await _bare(url, options.exptime_s))
                ours.append(await _through_obsq(url, options.exptime_s, Path(tmp) / f"data-{i}"))
        finally:
            if server is not None:
                server.stop()
    floor, took = statistics.median(bare), statistics.median(ours)
    print(f"camera {url}, {options.images} darks of {options.exptime_s:g} s, medians")
    print(f"  protocol alone (start, poll, ImageBytes)        {floor:8.3f} s")
    print(f"  obsq takeImages (events, keywords, FITS, registry) {took:6.3f} s")
    print(f"  obsq/protocol {took / floor:.2f}; overhead {took - floor:+.3f} s an image")
    return 0
