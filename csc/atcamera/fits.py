"""Writing raw FITS files atomically: nothing ever appears half-written under its final name.

The file is written to a hidden temporary name in the same folder, flushed and fsynced,
then renamed over its final name (atomic on POSIX); the folder is fsynced so
the rename survives a crash.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
from astropy.io import fits

from obsq.csc.atcamera.model import DetectorModel


@dataclass(frozen=True)
class WrittenFile:
    """A file in place under its final name."""

    path: Path
    byte_size: int
    md5: str


def build_hdus(
    primary: Mapping[str, Any], amplifiers: Sequence[tuple[Mapping[str, Any], npt.NDArray[Any]]]
) -> fits.HDUList:
    """A primary HDU with the exposure's header and one image HDU per amplifier."""
    hdus: list[Any] = [fits.PrimaryHDU(header=fits.Header(list(primary.items())))]
    for header, data in amplifiers:
        hdus.append(fits.ImageHDU(data=data, header=fits.Header(list(header.items()))))
    return fits.HDUList(hdus)


def write_atomic(path: Path, hdus: fits.HDUList) -> WrittenFile:
    """Write `hdus` to `path` atomically; return its size and MD5.

    The file is serialised once in memory; its MD5 is computed in a second thread while the
    bytes are written and fsynced (both release the GIL), so the checksum costs little time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    data = buffer.getbuffer()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(lambda: hashlib.md5(data).hexdigest())  # noqa: S324 — SAL's checkSum is MD5
            with tmp.open("wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            md5 = digest.result()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return WrittenFile(path, len(data), md5)


def amplifier_header(detector: DetectorModel, amp: int) -> dict[str, Any]:
    g = detector.geometry
    truth = detector.amplifiers[amp]
    return {
        "EXTNAME": f"Segment{amp // g.cols}{amp % g.cols}",
        "AMPNAME": f"C{amp:02d}",
        "DATASEC": g.datasec(),
        "BIASSEC": g.biassec(),
        "DETSEC": g.detsec(amp),
        "GAIN": round(truth.gain_e_per_adu, 5),
        "RDNOISE": round(truth.read_noise_e, 4),
        "SATURATE": round(truth.bias_adu + truth.full_well_e / truth.gain_e_per_adu),  # raw ADU: the full well
    }
