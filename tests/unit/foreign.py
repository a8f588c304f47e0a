"""FITS files written the way other acquisition software writes them, with pixels from first principles.

Not the project's camera model: a bias level, Gaussian read noise, Poisson electrons (dark current,
flat-field light with a fixed pixel response pattern) converted with a gain. The headers follow
each program's conventions:

- CCDSoft with an SBIG camera: IMAGETYP 'Bias Frame' / 'Dark Frame' / 'Light Frame' (flats too:
  the camera software types them so), EGAIN but no RDNOISE, CCD-TEMP and SET-TEMP, 16-bit with
  BZERO 32768, DATE-OBS;
- MaxIm DL: 'Bias Frame' / 'Dark Frame' / 'Flat Field' / 'Light Frame', EXPTIME and EXPOSURE,
  EGAIN, CALSTAT on a frame it has calibrated;
- N.I.N.A.: 'BIAS' / 'DARK' / 'FLAT' / 'LIGHT', GAIN and OFFSET as the camera's settings, EGAIN
  in e-/ADU, FILTER, microsecond DATE-OBS;
- SharpCap: no image type at all (the user's folder names say it), GAIN setting, seven-digit
  fractional seconds;
- ASIAIR: 'Bias' / 'Dark' / 'Flat' / 'Light', 8-bit frames from a planetary camera.
"""

from __future__ import annotations

import datetime
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

_SERIAL = itertools.count(1)
TYPE_WORDS = {
    "ccdsoft": {"BIAS": "Bias Frame", "DARK": "Dark Frame", "FLAT": "Light Frame", "LIGHT": "Light Frame"},
    "maxim": {"BIAS": "Bias Frame", "DARK": "Dark Frame", "FLAT": "Flat Field", "LIGHT": "Light Frame"},
    "nina": {"BIAS": "BIAS", "DARK": "DARK", "FLAT": "FLAT", "LIGHT": "LIGHT"},
    "sharpcap": {},
    "asiair": {"BIAS": "Bias", "DARK": "Dark", "FLAT": "Flat", "LIGHT": "Light"},
}


@dataclass
class Sensor:
    """A detector from first principles: ADU = bias + (electrons + read noise) / gain, clipped to the ADC."""

    gain: float = 2.3  # e-/ADU
    read_noise_e: float = 15.0
    bias_adu: float = 1000.0
    dark_e_per_s: float = 0.8
    shape: tuple[int, int] = (64, 64)
    bits: int = 16
    seed: int = 1
    prnu: float = 0.01
    rng: np.random.Generator = field(init=False)
    response: np.ndarray[Any, np.dtype[np.float64]] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.response = 1 + self.prnu * np.random.default_rng(self.seed + 99).standard_normal(self.shape)

    def expose(self, kind: str, exptime: float, flux_e_per_s: float = 0.0) -> np.ndarray[Any, np.dtype[Any]]:
        electrons = np.zeros(self.shape)
        if kind in ("DARK", "FLAT", "LIGHT"):
            electrons += self.rng.poisson(self.dark_e_per_s * exptime, self.shape)
        if kind in ("FLAT", "LIGHT"):
            electrons += self.rng.poisson(flux_e_per_s * exptime * self.response)
        adu = self.bias_adu + (electrons + self.rng.normal(0, self.read_noise_e, self.shape)) / self.gain
        top = 2**self.bits - 1
        return np.clip(np.round(adu), 0, top).astype(np.uint16 if self.bits == 16 else np.uint8)


@dataclass
class Acquisition:
    """One program writing one camera's frames into folders."""

    software: str
    folder: Path
    sensor: Sensor = field(default_factory=Sensor)
    instrument: str = "SBIG STL-1001 3 CCD Camera"
    start: datetime.datetime = datetime.datetime(2026, 11, 30, 19, 0, 0)
    count: int = 0

    def take(self, kind: str, exptime: float, subfolder: str = "", *, flux: float = 0.0, filter_: str = "",
             temperature: float = -5.0, **extra: Any) -> Path:  # fmt: skip
        data = self.sensor.expose(kind, exptime, flux)
        when = self.start + datetime.timedelta(seconds=30 * self.count)
        self.count += 1
        header = fits.Header()
        word = TYPE_WORDS[self.software].get(kind)
        if word is not None:
            header["IMAGETYP"] = word
        header["EXPTIME"] = exptime
        header["INSTRUME"] = self.instrument
        header["XBINNING"], header["YBINNING"] = 1, 1
        header["CCD-TEMP"] = temperature + 0.07 * (self.count % 3)
        if self.software == "ccdsoft":
            header["SWCREATE"] = "CCDSoft Version 5.00.210"
            header["DATE-OBS"] = when.isoformat(timespec="milliseconds")
            header["EGAIN"] = self.sensor.gain
            header["SET-TEMP"] = temperature
        elif self.software == "maxim":
            header["SWCREATE"] = "MaxIm DL Version 6.40"
            header["EXPOSURE"] = exptime
            header["DATE-OBS"] = when.isoformat(timespec="seconds")
            header["EGAIN"] = self.sensor.gain
            header["SET-TEMP"] = temperature
        elif self.software == "nina":
            header["SWCREATE"] = "N.I.N.A. 3.1.2.9001"
            header["EXPOSURE"] = exptime
            header["DATE-OBS"] = when.isoformat(timespec="microseconds")
            header["GAIN"] = (139, "the camera's gain setting")
            header["OFFSET"] = 21
            header["EGAIN"] = (self.sensor.gain, "electrons per ADU")
            if filter_:
                header["FILTER"] = filter_
        elif self.software == "sharpcap":
            header["SWCREATE"] = "SharpCap v4.1.11762.0"
            header["DATE-OBS"] = when.isoformat(timespec="microseconds") + "0"  # seven fractional digits
            header["GAIN"] = 300
            header["BAYERPAT"] = "RGGB"
        elif self.software == "asiair":
            header["DATE-OBS"] = when.isoformat(timespec="microseconds")
            header["GAIN"] = 120
            header["OFFSET"] = 30
            if filter_:
                header["FILTER"] = filter_
        for key, value in extra.items():
            header[key.replace("_", "-")] = value
        folder = self.folder / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind.lower()}_{exptime:g}s_{next(_SERIAL):04d}.fit"  # unique however many cameras write
        fits.PrimaryHDU(data, header).writeto(path)
        return path


def ccdproc_master(path: Path, level: float = 1000.0, shape: tuple[int, int] = (64, 64)) -> Path:
    """A master bias as ccdproc's CCDData.write leaves it: the image, MASK and UNCERT extensions, typed as a raw."""
    header = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "DATE-OBS": "2026-11-30T18:00:00",
                          "INSTRUME": "SBIG STL-1001 3 CCD Camera", "BUNIT": "adu"})  # fmt: skip
    hdus = fits.HDUList([
        fits.PrimaryHDU(np.full(shape, level, np.float32), header),
        fits.ImageHDU(np.zeros(shape, np.uint8), name="MASK"),
        fits.ImageHDU(np.full(shape, 0.5, np.float32), fits.Header({"UTYPE": "StdDevUncertainty"}), name="UNCERT"),
    ])  # fmt: skip
    hdus.writeto(path)
    return path
