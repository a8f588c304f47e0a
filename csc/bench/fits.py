"""`obsq bench fits`: the time to write one raw file (small and full-size detector) against a plain astropy write."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from obsq.csc.clock import perf_counter


@dataclass(frozen=True)
class FitsBenchOptions:
    """`obsq bench fits`: full-size images per measurement, and where to write them."""

    repeats: int = 5
    folder: Path | None = None


def _fits_times(detector: str, repeats: int, folder: Path) -> tuple[float, float, int]:
    """Median seconds per image of obsq's atomic write and of a plain astropy write, and the bytes."""
    from astropy.io import fits

    from obsq.csc.atcamera.fits import amplifier_header, build_hdus, write_atomic
    from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel

    model = DetectorModel(GEOMETRIES[detector])
    raws = model.expose(1, 4_700.0, 6.0, 8.0)
    header = {"IMGTYPE": "FLAT", "EXPTIME": 6.0, "FILTER": "SDSSr_65mm"}
    amps = [(amplifier_header(model, i), raw) for i, raw in enumerate(raws)]
    ours, plain = [], []
    size = 0
    for i in range(repeats):  # interleaved, so both see the same disk and machine noise
        t0 = perf_counter()
        written = write_atomic(folder / f"obsq-{i}.fits", build_hdus(header, amps))
        ours.append(perf_counter() - t0)
        size = written.byte_size
        t0 = perf_counter()
        hdus = fits.HDUList([fits.PrimaryHDU(header=fits.Header(list(header.items())))] + [
            fits.ImageHDU(data=raw, header=fits.Header(list(h.items()))) for h, raw in amps
        ])  # fmt: skip
        hdus.writeto(folder / f"plain-{i}.fits")
        plain.append(perf_counter() - t0)
        for path in folder.iterdir():
            path.unlink()
    return statistics.median(ours), statistics.median(plain), size


async def run_fits_benchmark(options: FitsBenchOptions) -> int:
    """The `obsq bench fits` command: time per raw file, obsq's atomic write vs a plain astropy write."""
    print("detector   amps   MB    obsq atomic write   plain astropy write   obsq/plain")
    for detector, repeats in (("small", options.repeats * 4), ("latiss", options.repeats)):
        with tempfile.TemporaryDirectory(dir=options.folder) as tmp:
            ours, plain, size = await asyncio.to_thread(_fits_times, detector, repeats, Path(tmp))
        amps = 4 if detector == "small" else 16
        times = f"{ours * 1e3:14.1f} ms {plain * 1e3:17.1f} ms {ours / plain:12.2f}"
        print(f"{detector:<9} {amps:>5} {size / 1e6:5.1f} {times}")
    return 0
