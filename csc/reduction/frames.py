"""Raw frames on disk: what a file is, its signature, and its pixels read a band of rows at a time.

Two kinds of file are understood:

- the obsq camera's files (LATISS style): a primary header and one image extension per
  amplifier with DATASEC/BIASSEC, AMPNAME, GAIN and RDNOISE;
- a plain single-image FITS from any camera, with the common amateur and observatory header
  words (IMAGETYP/IMGTYPE/FRAMETYP, EXPTIME/EXPOSURE, FILTER, EGAIN, GAIN and OFFSET settings,
  XBINNING/YBINNING, CCD-TEMP, DATE-OBS (+TIME-OBS)/MJD-OBS, READOUTM), 8/16-bit with BZERO.

On a plain file GAIN is the camera's gain *setting* (N.I.N.A., SharpCap and ASI write 0…600
there), part of the signature; the conversion factor in e-/ADU is EGAIN (CCDSoft, MaxIm DL,
N.I.N.A.). A product rather than a raw — a master with MASK/UNCERT/provenance extensions, or
NCOMBINE/IMCMB/CALSTAT-style keywords — is a `ProductError`, named as such.

A file is opened once, its headers parsed, and its pixel data read later with `os.pread` at the
data's byte offset, so a band costs one read per plane and never the whole image. Everything
wrong with a file is a `FrameError` naming it. Bounds: at most MAX_HDUS header-data units and
MAX_HEADER_READ_S seconds to read a file's headers (a file of 10,000 HDUs is refused after its
first MAX_HDUS, not read to the end); a file whose size, modification time or inode changes
while its headers are read, or between then and a read of its pixels, is refused ("changed while
it was read"). Non-finite pixels (NaN, Inf: only floating-point files can hold them) are masked
by the combine and counted (`nonfinite_pixels`).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.time import Time

from obsq.csc.reduction.isr import section

Array = npt.NDArray[np.float32]

IMAGE_TYPES = {
    "BIAS": "BIAS", "ZERO": "BIAS", "BIAS FRAME": "BIAS", "OFFSET": "BIAS",
    "DARK": "DARK", "DARK FRAME": "DARK",
    "FLAT": "FLAT", "FLAT FIELD": "FLAT", "FLAT FRAME": "FLAT", "FLATFIELD": "FLAT", "SKYFLAT": "FLAT",
    "DOMEFLAT": "FLAT", "TWILIGHT FLAT": "FLAT", "SKY FLAT": "FLAT", "DOME FLAT": "FLAT",
    "LIGHT": "OBJECT", "LIGHT FRAME": "OBJECT", "OBJECT": "OBJECT", "SCIENCE": "OBJECT",
    # Rubin's other image types: dome and sky flats, and the on-sky engineering kinds
    "SFLAT": "FLAT", "DFLAT": "FLAT", "ENGTEST": "OBJECT", "ACQ": "OBJECT", "CWFS": "OBJECT", "FOCUS": "OBJECT",
    "STUTTERED": "OBJECT", "INDOME": "OBJECT", "CBP": "OBJECT",
}  # fmt: skip
#: Type words that name a product, not a raw (MaxIm DL, PixInsight, Siril, ccdproc users).
PRODUCT_TYPES = ("MASTER", "SUPER", "INTEGRATION", "STACK")
#: Extension names of a product's planes besides the image (ccdproc's CCDData, obsq, LSST calibs).
PRODUCT_EXTENSIONS = {"MASK", "UNCERT", "UNCERTAINTY", "ERR", "ERROR", "VARIANCE", "WEIGHT", "PROVENANCE", "HISTORY"}
_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
TEMPERATURE_BAND_C = 5.0
#: Header-data units read from one file at most (a camera file has one per amplifier, a mosaic ~100).
MAX_HDUS = 512
#: Seconds (real) a file's headers may take to read at most.
MAX_HEADER_READ_S = 30.0
#: Bytes one header may take at most (a header of 100,000 cards is 8 MB).
MAX_HEADER_BYTES = 8 * 1024 * 1024


class FrameError(ValueError):
    """A file that cannot be used as a raw frame; the message names the file and the reason."""


class ProductError(FrameError):
    """A calibration product or stack (a master, an integration), not a raw frame."""


@dataclass(frozen=True)
class Plane:
    """One amplifier of a camera file, or the single image of a plain file."""

    name: str
    offset: int
    raw_shape: tuple[int, int]
    dtype: str
    bscale: float
    bzero: float
    data: tuple[slice, slice]
    overscan: tuple[slice, slice] | None
    gain: float | None
    read_noise_e: float | None
    saturation: float | None = None  # raw ADU: SATURATE, else the integer format's largest value

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.data
        return (rows.stop - rows.start, cols.stop - cols.start)


@dataclass(frozen=True)
class Frame:
    """A raw file: its kind, times, signature and planes."""

    path: Path
    imgtype: str
    exptime: float
    darktime: float
    filter: str
    mjd: float
    signature: dict[str, Any]
    planes: tuple[Plane, ...]
    instrument: str = ""
    #: (size, modification time in ns, inode) when its headers were read: a pixel read checks the file is the same
    stamp: tuple[int, int, int] = (0, 0, 0)

    def plane(self, name: str) -> Plane:
        for plane in self.planes:
            if plane.name == name:
                return plane
        raise FrameError(f"{self.path}: has no amplifier {name!r}")

    def read(self, plane: Plane, rows: tuple[int, int] | None = None, *, fd: int | None = None) -> Array:
        """Rows [r0, r1) of the plane's raw data (all columns, overscan included) as float32."""
        r0, r1 = rows if rows is not None else (0, plane.raw_shape[0])
        width = plane.raw_shape[1]
        itemsize = np.dtype(plane.dtype).itemsize
        size = (r1 - r0) * width * itemsize
        own = fd is None
        handle = os.open(self.path, os.O_RDONLY) if fd is None else fd
        try:
            if self.stamp != (0, 0, 0) and _stamp(os.fstat(handle)) != self.stamp:
                raise FrameError(f"{self.path}: changed since its headers were read (size, time or inode): not used")
            buffer = os.pread(handle, size, plane.offset + r0 * width * itemsize)
        finally:
            if own:
                os.close(handle)
        if len(buffer) != size:
            raise FrameError(f"{self.path}: truncated: amplifier {plane.name} rows {r0}-{r1} are missing")
        values = np.frombuffer(buffer, plane.dtype).reshape(r1 - r0, width).astype(np.float32)
        if plane.bscale != 1.0:
            values *= np.float32(plane.bscale)
        if plane.bzero != 0.0:
            values += np.float32(plane.bzero)
        return values


def _first(header: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if name in header and header[name] not in (None, ""):
            return header[name]
    return default


def _number(path: Path, header: Any, names: tuple[str, ...], default: float | None) -> float | None:
    value = _first(header, *names, default=default)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path}: header {names[0]}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise FrameError(f"{path}: header {names[0]}={value!r} is not finite")
    return number


def _mjd(path: Path, header: Any) -> float:
    if "MJD-OBS" in header:
        return float(header["MJD-OBS"])
    date = _first(header, "DATE-OBS", "DATE")
    if date is None:
        raise FrameError(f"{path}: no observation time (MJD-OBS or DATE-OBS)")
    text = str(date).strip().rstrip("Z")
    if "T" not in text and "TIME-OBS" in header:  # the old convention: the date here, the time there
        text = f"{text}T{str(header['TIME-OBS']).strip()}"
    try:
        return float(Time(text, format="isot" if "T" in text else "iso", scale="utc").mjd)
    except ValueError:
        raise FrameError(f"{path}: DATE-OBS={date!r} is not an ISO date") from None


def _product_reason(headers: list[Any]) -> str | None:
    """Why a file is a product rather than a raw, or None."""
    primary = headers[0]
    extensions = {str(h.get("EXTNAME", "")).strip().upper() for h in headers[1:]} & PRODUCT_EXTENSIONS
    if extensions:
        return f"a processed product with {', '.join(sorted(extensions))} extensions"
    for word in ("NCOMBINE", "STACKCNT", "NSTACK"):
        if word in primary and _is_more_than_one(primary[word]):
            return f"a combined product ({word}={primary[word]})"
    for word in ("IMCMB001", "COMBINED", "ZEROCOR", "DARKCOR", "FLATCOR", "BIASCORR"):
        if word in primary:
            return f"a processed product ({word} is set)"
    if str(primary.get("CALSTAT", "")).strip():  # MaxIm DL: the calibrations applied, e.g. 'BDF'
        return f"a calibrated frame (CALSTAT={str(primary['CALSTAT']).strip()!r})"
    kind = str(_first(primary, "IMGTYPE", "IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME", default="")).upper()
    comment = str(primary.comments["OBSTYPE"]).lower() if "OBSTYPE" in primary else ""
    if any(word in kind for word in PRODUCT_TYPES) or "master" in comment:
        return f"a product (type {kind.strip() or 'master calibration'!r})"
    return None


def _is_more_than_one(value: Any) -> bool:
    try:
        return float(value) > 1
    except (TypeError, ValueError):
        return False


def _plane(
    path: Path, name: str, header: Any, offset: int, file_size: int, *, trust_sections: bool, camera_layout: bool
) -> Plane:
    if header.get("NAXIS", 0) != 2:
        raise FrameError(f"{path}: image {name} has NAXIS={header.get('NAXIS')}, not 2")
    bitpix = header["BITPIX"]
    if bitpix not in _BITPIX:
        raise FrameError(f"{path}: image {name} has BITPIX={bitpix}, not a FITS image type")
    if "ZIMAGE" in header or header.get("XTENSION") == "BINTABLE":
        raise FrameError(f"{path}: image {name} is tile-compressed; uncompress it first (funpack)")
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    nbytes = shape[0] * shape[1] * abs(bitpix) // 8
    if offset + nbytes > file_size:
        raise FrameError(
            f"{path}: truncated: image {name} needs {nbytes} bytes at {offset}, the file ends at {file_size}"
        )
    full = (slice(0, shape[0]), slice(0, shape[1]))
    try:
        data = section(header["DATASEC"]) if trust_sections and "DATASEC" in header else full
        overscan = section(header["BIASSEC"]) if trust_sections and "BIASSEC" in header else None
    except ValueError as exc:
        raise FrameError(f"{path}: image {name}: {exc}") from None
    for label, region in (("DATASEC", data), ("BIASSEC", overscan)):
        if region is not None and (region[0].stop > shape[0] or region[1].stop > shape[1]):
            raise FrameError(f"{path}: image {name}: {label} reaches outside the {shape[1]}x{shape[0]} image")
    gain = _number(path, header, ("GAIN", "EGAIN") if camera_layout else ("EGAIN",), None)
    noise = _number(path, header, ("RDNOISE", "RON", "READNOIS"), None)
    bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    saturation = _number(path, header, ("SATURATE",), None)
    if saturation is None and bitpix in (8, 16):
        saturation = (255 if bitpix == 8 else 32767) * bscale + bzero
    return Plane(name, offset, shape, _BITPIX[bitpix], bscale, bzero, data, overscan, gain, noise, saturation)


def _physical_filter(primary: Any) -> str:
    """The filter name; for LATISS filter~grating, as SDSSy sits in the grating wheel."""
    name = str(_first(primary, "FILTER", "FILTER1", "FILTNAME", default="NONE")).strip()
    return f"{name}~{str(primary['GRATING']).strip()}" if "GRATING" in primary else name


def _stamp(status: os.stat_result) -> tuple[int, int, int]:
    return (status.st_size, status.st_mtime_ns, status.st_ino)


def read_headers(
    path: Path, *, now: Callable[[], float] | None = None
) -> tuple[list[Any], list[int], int, tuple[int, int, int]]:
    """Every HDU's header, the byte offset of each one's data, the file's size and stamp (FrameError if unusable).

    The file is walked header by header (2880-byte blocks up to END, then the data's size is
    skipped), so only headers are read, at most MAX_HDUS of them, and, given a real-time clock
    `now`, in at most MAX_HEADER_READ_S.
    """
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise FrameError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        before = os.fstat(handle)
        if before.st_size % 2880:
            raise FrameError(
                f"{path}: truncated: {before.st_size} bytes is not a whole number of 2880-byte FITS blocks"
            )
        headers, offsets = _walk(path, handle, before.st_size, now)
        after = os.stat(path)
    except OSError as exc:
        raise FrameError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(handle)
    if _stamp(after) != _stamp(before):
        raise FrameError(f"{path}: changed while it was read (size, time or inode): not used")
    return headers, offsets, before.st_size, _stamp(after)


def _walk(path: Path, handle: int, file_size: int, now: Callable[[], float] | None) -> tuple[list[Any], list[int]]:
    start = now() if now is not None else 0.0
    headers: list[Any] = []
    offsets: list[int] = []
    offset = 0
    while offset < file_size:
        if len(headers) >= MAX_HDUS:
            raise FrameError(f"{path}: holds more than {MAX_HDUS} header-data units (rule: at most {MAX_HDUS} "
                             "per file); not read further")  # fmt: skip
        if now is not None and now() - start > MAX_HEADER_READ_S:
            raise FrameError(f"{path}: its headers took more than {MAX_HEADER_READ_S:g} s to read ({len(headers)} "
                             f"read so far; rule: at most {MAX_HEADER_READ_S:g} s a file)")  # fmt: skip
        text, offset = _header_text(path, handle, offset, file_size, first=not headers)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = fits.Header.fromstring(text)
            size = _data_size(header)
        except (ValueError, KeyError, TypeError, fits.VerifyError) as exc:
            raise FrameError(f"{path}: not a readable FITS file (header {len(headers)}: {exc})") from None
        headers.append(header)
        offsets.append(offset)
        offset += -(-size // 2880) * 2880
    if not headers:
        raise FrameError(f"{path}: not a readable FITS file (it is empty)")
    return headers, offsets


def _header_text(path: Path, handle: int, offset: int, file_size: int, *, first: bool) -> tuple[str, int]:
    """One header's cards (up to END) from `offset`, and the offset of its data."""
    blocks: list[bytes] = []
    begins = offset
    while True:
        block = os.pread(handle, 2880, offset)
        if len(block) < 2880:
            raise FrameError(f"{path}: not a readable FITS file: the header at byte {begins} has no END card before "
                             f"the file ends at {file_size} (truncated or corrupt)")  # fmt: skip
        if first and not blocks and not block.startswith(b"SIMPLE  ="):
            raise FrameError(f"{path}: not a FITS file (it does not begin with SIMPLE)")
        blocks.append(block)
        offset += 2880
        if any(block[i : i + 80].rstrip() == b"END" for i in range(0, 2880, 80)):
            return b"".join(blocks).decode("ascii", errors="replace"), offset
        if len(blocks) * 2880 > MAX_HEADER_BYTES:
            raise FrameError(f"{path}: a header longer than {MAX_HEADER_BYTES} bytes (rule: at most that); not read")


def _data_size(header: Any) -> int:
    """Bytes of an HDU's data (FITS standard 4.4.1: BITPIX, NAXISn, PCOUNT, GCOUNT)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    elements = math.prod(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1))
    return abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + elements)


def nonfinite_pixels(frame: Frame) -> int:
    """How many of a frame's pixels are NaN or infinite (0 without reading for integer files, which cannot be)."""
    count = 0
    for plane in frame.planes:
        if np.dtype(plane.dtype).kind == "f":
            count += int(np.count_nonzero(~np.isfinite(frame.read(plane))))
    return count


def open_frame(
    path: str | os.PathLike[str], *, imgtype: str | None = None, now: Callable[[], float] | None = None
) -> Frame:
    """Parse a raw file's headers (the pixels are read later, band by band); `imgtype` overrides the header's.

    `now`, a real-time clock, bounds the time its headers may take (`read_headers`).
    """
    path = Path(path)
    headers, offsets, file_size, stamp = read_headers(path, now=now)
    primary = headers[0]
    product = _product_reason(headers)
    if product is not None:
        raise ProductError(f"{path}: {product}, not a raw frame")
    images = [(i, h) for i, h in enumerate(headers) if h.get("NAXIS", 0) == 2 and h.get("XTENSION", "IMAGE") == "IMAGE"]
    if not images:
        raise FrameError(f"{path}: holds no two-dimensional image")
    camera_layout = len(images) > 1 or (images[0][0] > 0 and "AMPNAME" in images[0][1])
    planes = []
    for index, header in images:
        name = str(header.get("AMPNAME", header.get("EXTNAME", "IMAGE"))) if camera_layout else "IMAGE"
        trust = camera_layout or "BIASSEC" in header
        planes.append(
            _plane(path, name, header, offsets[index], file_size, trust_sections=trust, camera_layout=camera_layout)
        )
    if len({p.name for p in planes}) != len(planes):
        raise FrameError(f"{path}: two amplifiers share a name")
    kind_word = imgtype or _first(primary, "IMGTYPE", "IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME")
    if kind_word is None:
        raise FrameError(f"{path}: no image type (IMGTYPE, IMAGETYP, OBSTYPE or FRAMETYP); give one with --type")
    kind = IMAGE_TYPES.get(str(kind_word).strip().upper())
    if kind is None:
        raise FrameError(
            f"{path}: image type {kind_word!r} is not one of {', '.join(sorted(set(IMAGE_TYPES.values())))}"
        )
    exptime = _number(path, primary, ("EXPTIME", "EXPOSURE", "EXP_TIME"), None)
    if exptime is None:
        raise FrameError(f"{path}: no exposure time (EXPTIME or EXPOSURE)")
    darktime = _number(path, primary, ("DARKTIME",), exptime)
    filter_ = _physical_filter(primary)
    temperature = _number(path, primary, ("CCD-TEMP", "CCDTEMP", "DET-TEMP"), None)
    signature: dict[str, Any] = {
        "detector": str(_first(primary, "DETECTOR", "CCDNAME", "INSTRUME", "CAMERA", default="UNKNOWN")).strip(),
        "layout": ";".join(f"{p.name}:{p.shape[1]}x{p.shape[0]}" for p in planes),
        "binning": f"{int(_number(path, primary, ('XBINNING', 'CCDBINX', 'BINX'), 1) or 1)}x"
                   f"{int(_number(path, primary, ('YBINNING', 'CCDBINY', 'BINY'), 1) or 1)}",
        "readout": str(_first(primary, "READOUTM", "READMODE", "ROMODE", default="")).strip(),
    }  # fmt: skip
    for word in ("GAIN", "OFFSET"):
        value = _number(path, primary, (word,), None) if not camera_layout or word in primary else None
        if value is not None:
            signature[word.lower()] = value
    if temperature is not None:
        signature["temperature_band"] = TEMPERATURE_BAND_C * round(temperature / TEMPERATURE_BAND_C)
    return Frame(path, kind, float(exptime), float(darktime or 0.0), filter_, _mjd(path, primary), signature,
                 tuple(planes), str(_first(primary, "INSTRUME", "CAMERA", "DETECTOR", default="")).strip(),
                 stamp)  # fmt: skip


def signature_key(signature: dict[str, Any], *, with_filter: str | None = None) -> str:
    """A stable text key of a signature (plus the filter, for flats)."""
    parts = [f"{k}={signature[k]}" for k in sorted(signature)]
    if with_filter is not None:
        parts.append(f"filter={with_filter}")
    return "|".join(parts)


def describe_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k, '-')} vs {b.get(k, '-')}" for k in keys if a.get(k) != b.get(k))


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """A folder name from any text: `SDSSr_65mm~empty_1` -> `SDSSr_65mm_empty_1`; nothing -> `none`."""
    return _SAFE.sub("_", text).strip("_") or "none"
