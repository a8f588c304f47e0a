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
wrong with a file is a `FrameError` naming it (a header value that is not a number, a size past
the end of the file, a card that cannot be parsed, a FIFO or a device). Bounds: at most MAX_HDUS
header-data units (a file of 10,000 is refused after its first MAX_HDUS, not read to the end),
MAX_FILE_PIXELS pixels, and MAX_READ_S seconds of real time to read a file's headers and scan
its pixels (`ReadBudget`, looked at between blocks and bands: nothing is interrupted). A file
whose size, modification time or inode changes while its headers are read, or between then and
any read of its pixels, or that is replaced under its name before a combine ends, is refused
(`BadFileError`: "changed while it was read"). Non-finite pixels (NaN, Inf: floating-point
files, or integers that BSCALE carries past float32) are counted per amplifier
(`scan_nonfinite`) and masked by the combine.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.time import Time

from obsq.csc.reduction.cards import parse_cards
from obsq.csc.reduction.formats import Decoded, FormatError, OtherImageError, decoded, sniff
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
#: Header-data units read from one file at most (a camera file has one per amplifier: LATISS 16, DECam 70).
MAX_HDUS = 512
#: Seconds (real) reading one file may take at most: its headers, then (floating-point files) its pixels' scan.
MAX_READ_S = 30.0
#: Bytes one header may take at most (a header of 100,000 cards is 8 MB).
MAX_HEADER_BYTES = 8 * 1024 * 1024
#: Pixels one file may hold at most (2^28: 1 GB as float32; a 61-megapixel sensor or a 16-amplifier CCD is far below).
MAX_FILE_PIXELS = 1 << 28
#: Pixels read at once when a file's pixels are scanned.
SCAN_BAND_PIXELS = 1 << 20
#: A stepped sample of rows is read as one span up to this many bytes, else a read a row (`Frame.read`).
SPAN_READ_BYTES = 4 << 20
#: Why a file that changed is refused.
CHANGED = ("changed while it was read (its size, modification time or inode differ from when its reading began; "
           "rule: a file must not change while it is read): not used")  # fmt: skip


class FrameError(ValueError):
    """A file that cannot be used as a raw frame; the message names the file and the reason."""


class ProductError(FrameError):
    """A calibration product or stack (a master, an integration), not a raw frame."""


class OtherFormatError(FrameError):
    """An image file in a format obsq does not read (TIFF, PNG, a camera's raw…): named, not a fault of the file."""


class BadFileError(FrameError):
    """A file refused for what happened when it was read (it changed, it was too slow, it is cut short).

    `path` names the file, so a combine can go on without it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


@dataclass
class ReadBudget:
    """The real time one file's reading may take: `check` between blocks and bands raises BadFileError past it.

    `now` is a real-time clock (None: no bound); the bound is on work actually done, looked at between
    units of work, so nothing has to be interrupted.
    """

    path: Path
    now: Callable[[], float] | None
    limit_s: float = MAX_READ_S
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.now() if self.now is not None else 0.0

    def check(self, progress: str) -> None:
        if self.now is not None and self.now() - self.start > self.limit_s:
            raise BadFileError(self.path, f"reading it took more than {self.limit_s:g} s ({progress}; rule: at most "
                               f"{self.limit_s:g} s a file): not used")  # fmt: skip


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
    #: the format it came in ("fits", "fits.fz", "fits.gz", "xisf"); other than "fits", its pixels are read from
    #: `decoded`, a plain FITS copy (`formats.decoded`), and `source_stamp` is the original's (size, mtime, inode)
    format: str = "fits"
    decoded: Path | None = None
    source_stamp: tuple[int, int, int] = (0, 0, 0)
    #: the sensor's temperature as measured (CCD-TEMP, °C), and its set point (SET-TEMP); None where not given
    temperature: float | None = None
    set_temperature: float | None = None
    #: a colour sensor's mosaic words as the file gives them (BAYERPAT, XBAYROFF, YBAYROFF, ROWORDER); () if none
    cfa: tuple[tuple[str, Any], ...] = ()

    @property
    def colour(self) -> bool:
        """A one-shot-colour sensor: its pixels are a mosaic of colours (`cfa` is given only with BAYERPAT)."""
        return bool(self.cfa)

    @property
    def pixels(self) -> Path:
        """The file its pixels are read from: itself, or its decoded copy."""
        return self.decoded or self.path

    def plane(self, name: str) -> Plane:
        for plane in self.planes:
            if plane.name == name:
                return plane
        raise FrameError(f"{self.path}: has no amplifier {name!r}")

    def read(self, plane: Plane, rows: tuple[int, int] | range | None = None, *, fd: int | None = None) -> Array:
        """Rows [r0, r1) of the plane's raw data (all columns, overscan included) as float32.

        `rows` may be a range with a step (every k-th row of a statistic's sample): one read a row.
        The file must be the one whose headers were read (`stamp`) before and after the read, else
        BadFileError: a file rewritten in place or replaced under its name is never used. A scaled
        integer beyond float32's range (BSCALE) reads as infinite, and is masked like any.
        """
        wanted = range(*rows) if isinstance(rows, tuple) else rows if rows is not None else range(plane.raw_shape[0])
        width = plane.raw_shape[1]
        row_bytes = width * np.dtype(plane.dtype).itemsize
        # a contiguous run is one read; a stepped sample one read a row, or one of its whole span if that is small
        # (a read costs ~10 us of system call before a byte is copied: 128 rows of 2 KB take 8x one read of 1 MB)
        whole_span = wanted.step > 1 and len(wanted) and (wanted[-1] + 1 - wanted.start) * row_bytes <= SPAN_READ_BYTES
        spans = [(wanted.start, len(wanted))] if wanted.step == 1 else [(r, 1) for r in wanted]
        if whole_span:
            spans = [(wanted.start, wanted[-1] + 1 - wanted.start)]
        own = fd is None
        try:
            handle = os.open(self.pixels, os.O_RDONLY) if fd is None else fd
        except OSError as exc:
            raise BadFileError(self.path, f"cannot be read any more ({exc.strerror}): not used") from None
        try:
            self._same(handle)
            parts = [os.pread(handle, count * row_bytes, plane.offset + first * row_bytes) for first, count in spans]
            self._same(handle)
        except OSError as exc:
            raise BadFileError(self.path, f"cannot be read any more ({exc.strerror}): not used") from None
        finally:
            if own:
                os.close(handle)
        buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(buffer) != sum(count for _, count in spans) * row_bytes:
            raise BadFileError(self.path, f"truncated: amplifier {plane.name} rows {wanted.start}-{wanted.stop} "
                               "are missing")  # fmt: skip
        stored = np.frombuffer(buffer, plane.dtype).reshape(-1, width)
        values = (stored[:: wanted.step] if whole_span else stored).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: infinite, then masked
            if plane.bscale != 1.0:
                values *= np.float32(plane.bscale)
            if plane.bzero != 0.0:
                values += np.float32(plane.bzero)
        return values

    def read_raw_into(self, plane: Plane, rows: tuple[int, int], out: memoryview, *, fd: int) -> None:
        """Rows [r0, r1) of the plane's raw bytes (the file's own type and byte order, all columns) into `out`.

        One read into the caller's buffer, for a stack of many files converted at once; the file
        must be the one whose headers were read, as for `read`.
        """
        r0, r1 = rows
        row_bytes = plane.raw_shape[1] * np.dtype(plane.dtype).itemsize
        if len(out) != (r1 - r0) * row_bytes:
            raise ValueError(f"a buffer of {len(out)} bytes for {r1 - r0} rows of {row_bytes}")
        try:
            self._same(fd)
            got = os.preadv(fd, [out], plane.offset + r0 * row_bytes)
            self._same(fd)
        except OSError as exc:
            raise BadFileError(self.path, f"cannot be read any more ({exc.strerror}): not used") from None
        if got != len(out):
            raise BadFileError(self.path, f"truncated: amplifier {plane.name} rows {r0}-{r1} are missing")

    def _same(self, handle: int) -> None:
        if self.stamp not in ((0, 0, 0), _stamp(os.fstat(handle))):
            raise BadFileError(self.path, CHANGED)

    def unchanged(self) -> None:
        """BadFileError unless the file under this path is still the one read (a replacement has a new inode)."""
        for path, stamp in ((self.path, self.source_stamp if self.decoded else self.stamp), (self.pixels, self.stamp)):
            try:
                now = _stamp(os.stat(path))
            except OSError as exc:
                raise BadFileError(self.path, f"is gone while it was read ({exc.strerror}): not used") from None
            if stamp not in ((0, 0, 0), now):
                raise BadFileError(self.path, CHANGED)


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


#: Binning factors a header may give (a whole number in this range).
BINNING_RANGE = (1, 64)


def _binning(path: Path, header: Any, names: tuple[str, ...]) -> int:
    value = _number(path, header, names, 1) or 0.0
    low, high = BINNING_RANGE
    if value != int(value) or not low <= value <= high:
        raise FrameError(f"{path}: header {names[0]}={value:g} is not a binning (rule: a whole number {low} to {high})")
    return int(value)


def _mjd(path: Path, header: Any) -> float:
    if "MJD-OBS" in header:
        return float(_number(path, header, ("MJD-OBS",), None) or 0.0)
    date = _first(header, "DATE-OBS", "DATE")
    if date is None:
        raise FrameError(f"{path}: no observation time (MJD-OBS or DATE-OBS)")
    text = str(date).strip().rstrip("Z")
    if "T" not in text and "TIME-OBS" in header:  # the old convention: the date here, the time there
        text = f"{text}T{str(header['TIME-OBS']).strip()}"
    try:
        return float(Time(text, format="isot" if "T" in text else "iso", scale="utc").mjd)
    except (ValueError, TypeError, OverflowError):
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
    path: Path,
    name: str,
    header: Any,
    offset: int,
    file_size: int,
    *,
    trust_sections: bool,
    camera_layout: bool,
    outer: Any = None,
) -> Plane:
    if header.get("NAXIS", 0) != 2:
        raise FrameError(f"{path}: image {name} has NAXIS={header.get('NAXIS')}, not 2")
    bitpix = header["BITPIX"]
    if bitpix not in _BITPIX:
        raise FrameError(f"{path}: image {name} has BITPIX={bitpix}, not a FITS image type")
    if "ZIMAGE" in header or header.get("XTENSION") == "BINTABLE":
        raise FrameError(f"{path}: image {name} is tile-compressed; uncompress it first (funpack)")
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    if not shape[0] or not shape[1]:
        raise FrameError(f"{path}: image {name} is empty ({shape[1]}x{shape[0]} pixels)")
    nbytes = shape[0] * shape[1] * abs(bitpix) // 8
    if offset + nbytes > file_size:
        raise FrameError(
            f"{path}: truncated: image {name} needs {nbytes} bytes at {offset}, the file ends at {file_size}"
        )
    data, overscan = _sections(path, name, header, shape, trust=trust_sections)
    gain_words = ("GAIN", "EGAIN") if camera_layout else ("EGAIN",)
    gain = _number(path, header, gain_words, None)
    if gain is None and outer is not None:  # a plain image in an extension: its camera's words are in the primary
        gain = _number(path, outer, gain_words, None)
    if gain is not None and gain <= 0:
        raise FrameError(f"{path}: image {name}: gain {gain:g} e-/ADU (rule: a conversion gain is above 0)")
    noise = _number(path, header, ("RDNOISE", "RON", "READNOIS"), None)
    if noise is None and outer is not None:
        noise = _number(path, outer, ("RDNOISE", "RON", "READNOIS"), None)
    if noise is not None and noise < 0:
        raise FrameError(f"{path}: image {name}: read noise {noise:g} e- (rule: a read noise is 0 or more)")
    bscale = _number(path, header, ("BSCALE",), 1.0) or 0.0
    bzero = _number(path, header, ("BZERO",), 0.0) or 0.0
    if bscale == 0.0:
        raise FrameError(f"{path}: image {name} has BSCALE=0: every pixel would be BZERO")
    saturation = _number(path, header, ("SATURATE",), None)
    if saturation is None and bitpix in (8, 16):
        saturation = (255 if bitpix == 8 else 32767) * bscale + bzero
    return Plane(name, offset, shape, _BITPIX[bitpix], bscale, bzero, data, overscan, gain, noise, saturation)


def _sections(
    path: Path, name: str, header: Any, shape: tuple[int, int], *, trust: bool
) -> tuple[tuple[slice, slice], tuple[slice, slice] | None]:
    """The data section (the whole image unless DATASEC is trusted) and the overscan (BIASSEC, or None)."""
    regions: dict[str, tuple[slice, slice] | None] = {"DATASEC": None, "BIASSEC": None}
    for word in regions:
        if trust and word in header:
            try:
                region = section(str(header[word]))
            except ValueError as exc:
                raise FrameError(f"{path}: image {name}: {word}: {exc}") from None
            if region[0].stop > shape[0] or region[1].stop > shape[1]:
                raise FrameError(f"{path}: image {name}: {word} reaches outside the {shape[1]}x{shape[0]} image")
            regions[word] = region
    return regions["DATASEC"] or (slice(0, shape[0]), slice(0, shape[1])), regions["BIASSEC"]


def _physical_filter(primary: Any) -> str:
    """The filter name; for LATISS filter~grating, as SDSSy sits in the grating wheel."""
    name = str(_first(primary, "FILTER", "FILTER1", "FILTNAME", default="NONE")).strip()
    return f"{name}~{str(primary['GRATING']).strip()}" if "GRATING" in primary else name


def _stamp(status: os.stat_result) -> tuple[int, int, int]:
    return (status.st_size, status.st_mtime_ns, status.st_ino)


#: The read_headers seam: called between reading the headers and the second look at the file (tests rewrite it here).
AfterRead = Callable[[Path], None]


def read_headers(
    path: Path,
    *,
    now: Callable[[], float] | None = None,
    budget: ReadBudget | None = None,
    after_read: AfterRead | None = None,
) -> tuple[list[Any], list[int], int, tuple[int, int, int]]:
    """Every HDU's header, the byte offset of each one's data, the file's size and stamp (FrameError if unusable).

    The file is walked header by header (2880-byte blocks up to END, then the data's size is
    skipped), so only headers are read, at most MAX_HDUS of them, and, given a real-time clock
    `now` (or a `budget` already running), in at most MAX_READ_S. Only a regular file is opened
    (a FIFO or a device would block or never end). The file is looked at before and after: a
    size, modification time or inode that differs is `changed while it was read`.
    """
    budget = budget if budget is not None else ReadBudget(path, now)
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opened to be refused must not wait for a writer
    except OSError as exc:
        raise FrameError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        before = os.fstat(handle)
        if not stat.S_ISREG(before.st_mode):
            raise FrameError(f"{path}: not a regular file (a pipe, a device or a socket): not read")
        if before.st_size % 2880:
            raise FrameError(
                f"{path}: truncated: {before.st_size} bytes is not a whole number of 2880-byte FITS blocks"
            )
        headers, offsets = _walk(path, handle, before.st_size, budget)
        if after_read is not None:
            after_read(path)
        after = [os.fstat(handle), os.stat(path)]  # the file read, and the file now under its name
    except OSError as exc:
        raise FrameError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(handle)
    if any(_stamp(status) != _stamp(before) for status in after):
        raise BadFileError(path, CHANGED)
    return headers, offsets, before.st_size, _stamp(before)


def _walk(path: Path, handle: int, file_size: int, budget: ReadBudget) -> tuple[list[Any], list[int]]:
    headers: list[Any] = []
    offsets: list[int] = []
    offset = 0
    while offset < file_size:
        if len(headers) >= MAX_HDUS:
            raise FrameError(f"{path}: holds more than {MAX_HDUS} header-data units (rule: at most {MAX_HDUS} "
                             "per file); not read further")  # fmt: skip
        text, offset = _header_text(path, handle, offset, file_size, first=not headers, budget=budget)
        try:
            header: Any = parse_cards(text)  # plain cards at once; anything else as astropy reads it
            if header is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    header = fits.Header.fromstring(text)
            size = _data_size(header)
        except (ValueError, KeyError, TypeError, IndexError, fits.VerifyError) as exc:
            raise FrameError(f"{path}: not a readable FITS file (header {len(headers)}: {exc})") from None
        if offset + size > file_size:
            raise FrameError(f"{path}: truncated: header-data unit {len(headers)} needs {size} bytes of data at "
                             f"{offset}, the file ends at {file_size}")  # fmt: skip
        headers.append(header)
        offsets.append(offset)
        offset += -(-size // 2880) * 2880
    if not headers:
        raise FrameError(f"{path}: not a readable FITS file (it is empty)")
    return headers, offsets


def _header_text(
    path: Path, handle: int, offset: int, file_size: int, *, first: bool, budget: ReadBudget
) -> tuple[str, int]:
    """One header's cards (up to END) from `offset`, and the offset of its data."""
    blocks: list[bytes] = []
    begins = offset
    while True:
        budget.check(f"at byte {offset} of its headers")
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


def _count(header: Any, word: str, default: int | None = None) -> int:
    """A header's whole, non-negative number (NAXISn, PCOUNT, GCOUNT); ValueError naming the word if not."""
    if word not in header:
        if default is None:
            raise ValueError(f"{word} is missing")
        return default
    value = header[word]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{word}={value!r} is not a whole number of at least 0")
    return value


def _data_size(header: Any) -> int:
    """Bytes of an HDU's data (FITS standard 4.4.1: BITPIX, NAXISn, PCOUNT, GCOUNT); ValueError naming a bad word."""
    value = header.get("BITPIX")
    if value not in _BITPIX:
        raise ValueError(f"BITPIX={value!r} is not one of {', '.join(map(str, _BITPIX))}")
    bitpix = int(value)
    naxis = _count(header, "NAXIS")
    if naxis > 999:
        raise ValueError(f"NAXIS={naxis} is more than 999")
    if naxis == 0:
        return 0
    elements = math.prod(_count(header, f"NAXIS{i}") for i in range(1, naxis + 1))
    return abs(bitpix) // 8 * _count(header, "GCOUNT", 1) * (_count(header, "PCOUNT", 0) + elements)


@dataclass(frozen=True)
class PlaneScan:
    """Non-finite pixels of one plane: in its data section, in its overscan, and in the whole raw plane."""

    name: str
    data_pixels: int
    data_bad: int
    overscan_pixels: int
    overscan_bad: int
    raw_bad: int


def _may_be_non_finite(plane: Plane) -> bool:
    """A floating-point plane, or integers that BSCALE/BZERO carry past float32's range."""
    kind = np.dtype(plane.dtype)
    if kind.kind == "f":
        return True
    info = np.iinfo(kind)
    extreme = max(abs(int(info.min)), abs(int(info.max))) * abs(plane.bscale) + abs(plane.bzero)
    return not extreme < float(np.finfo(np.float32).max)


def scan_nonfinite(frame: Frame, budget: ReadBudget | None = None) -> list[PlaneScan]:
    """Every plane's NaN and infinite pixels, read a band of rows at a time within the file's `budget`.

    Only planes that can hold them are read (floating point, or integers scaled past float32);
    the others count 0 without a read.
    """
    scans = []
    for plane in frame.planes:
        rows, cols = plane.data
        data_pixels = (rows.stop - rows.start) * (cols.stop - cols.start)
        overscan_pixels = 0
        if plane.overscan is not None:
            o_rows, o_cols = plane.overscan
            overscan_pixels = (o_rows.stop - o_rows.start) * (o_cols.stop - o_cols.start)
        bad = _scan_plane(frame, plane, budget) if _may_be_non_finite(plane) else (0, 0, 0)
        scans.append(PlaneScan(plane.name, data_pixels, bad[0], overscan_pixels, bad[1], bad[2]))
    return scans


def _scan_plane(frame: Frame, plane: Plane, budget: ReadBudget | None) -> tuple[int, int, int]:
    """(in the data section, in the overscan, in all) NaN and infinite pixels of one plane.

    Floats stored unscaled are looked at as stored (no float32 copy); only a band holding a bad
    value, or a scaled integer's, is converted.
    """
    height, width = plane.raw_shape
    step = max(1, SCAN_BAND_PIXELS // width)
    as_stored = np.dtype(plane.dtype).kind == "f" and plane.bscale == 1.0 and plane.bzero == 0.0
    row_bytes = width * np.dtype(plane.dtype).itemsize
    buffer = np.empty(min(step, height) * row_bytes if as_stored else 0, np.uint8)  # not zeroed: it is read into
    data_bad = overscan_bad = raw_bad = 0
    try:
        handle = os.open(frame.pixels, os.O_RDONLY)
    except OSError as exc:
        raise BadFileError(frame.path, f"cannot be read any more ({exc.strerror}): not used") from None
    try:
        for r0 in range(0, height, step):
            if budget is not None:
                budget.check(f"its pixels, amplifier {plane.name} row {r0}")
            r1 = min(r0 + step, height)
            if as_stored:
                view = buffer.data[: (r1 - r0) * row_bytes]
                frame.read_raw_into(plane, (r0, r1), view, fd=handle)
                if np.isfinite(np.frombuffer(view, plane.dtype)).all():
                    continue
            band = frame.read(plane, (r0, r1), fd=handle)
            if np.isfinite(band.sum(dtype=np.float64)):  # a float64 sum of finite float32 values stays finite
                continue
            bad = ~np.isfinite(band)
            raw_bad += int(np.count_nonzero(bad))
            data_bad += _count_in(bad, r0, r1, plane.data)
            if plane.overscan is not None:
                overscan_bad += _count_in(bad, r0, r1, plane.overscan)
    finally:
        os.close(handle)
    return data_bad, overscan_bad, raw_bad


def _count_in(bad: npt.NDArray[np.bool_], r0: int, r1: int, region: tuple[slice, slice]) -> int:
    """How many of a band's (rows r0..r1) bad pixels fall in a region of the plane."""
    rows, cols = region
    low, high = max(rows.start, r0), min(rows.stop, r1)
    return int(np.count_nonzero(bad[low - r0 : high - r0, cols])) if high > low else 0


def nonfinite_pixels(frame: Frame) -> int:
    """How many of a frame's pixels are NaN or infinite (0 without reading when none can be)."""
    return sum(scan.raw_bad for scan in scan_nonfinite(frame))


def open_frame(
    path: str | os.PathLike[str],
    *,
    imgtype: str | None = None,
    now: Callable[[], float] | None = None,
    budget: ReadBudget | None = None,
    after_read: AfterRead | None = None,
) -> Frame:
    """Parse a raw file's headers (the pixels are read later, band by band); `imgtype` overrides the header's.

    `now`, a real-time clock, bounds the time its headers may take (`read_headers`); a `budget`
    already running goes on (the survey spends one on the headers and the scan of the pixels).
    """
    path = Path(path)
    opened = _OPENED.get()
    key = _opened_key(path, imgtype) if opened is not None and after_read is None else None
    if opened is not None and key is not None and key in opened:  # the same file, unchanged since it was read
        return opened[key]
    frame = _open_frame(path, imgtype=imgtype, now=now, budget=budget, after_read=after_read)
    if opened is not None and key is not None:
        if len(opened) >= MAX_OPENED:
            opened.clear()
        opened[key] = frame
    return frame


#: Within `reusing_opened()`, frames opened by (path, type override, size, modification time, inode): one
#: request that surveys, combines and verifies the same files reads each one's headers once; a changed file
#: is a new key. Outside it (services, tests) every open reads the file.
_OPENED: contextvars.ContextVar[dict[tuple[str, str | None, tuple[int, int, int]], Frame] | None] = (
    contextvars.ContextVar("opened_frames", default=None)
)
MAX_OPENED = 8192


@contextlib.contextmanager
def reusing_opened() -> Iterator[None]:
    """Within: a file opened again, unchanged, is the frame already read (one command's survey, build, verify)."""
    token = _OPENED.set({})
    try:
        yield
    finally:
        _OPENED.reset(token)


def _opened_key(path: Path, imgtype: str | None) -> tuple[str, str | None, tuple[int, int, int]] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None  # opened to be refused, by name
    return (str(path.resolve()), imgtype, _stamp(status)) if stat.S_ISREG(status.st_mode) else None


def _open_frame(
    path: Path,
    *,
    imgtype: str | None,
    now: Callable[[], float] | None,
    budget: ReadBudget | None,
    after_read: AfterRead | None,
) -> Frame:
    copy: Decoded | None = None
    try:
        kind = sniff(path)
        if kind != "fits":
            copy = decoded(path, kind)
        else:
            headers, offsets, file_size, stamp = read_headers(path, now=now, budget=budget, after_read=after_read)
            if any(header.get("ZIMAGE") for header in headers):
                copy = decoded(path, kind, tile_compressed=True)
        source_stamp = (0, 0, 0)
        if copy is not None:
            source_stamp = _stamp(os.stat(path))
            headers, offsets, file_size, stamp = read_headers(copy.path, now=now, budget=budget)
    except OtherImageError as exc:
        raise OtherFormatError(f"{path}: {exc}") from None
    except FormatError as exc:
        raise FrameError(f"{path}: {exc}") from None
    except FrameError as exc:  # the copy's errors are the file's
        if copy is None:
            raise
        raise FrameError(str(exc).replace(str(copy.path), str(path))) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns of the cards it fixes; the others are the error below
            frame = _frame(path, headers, offsets, file_size, stamp, imgtype=imgtype)
    except fits.VerifyError as exc:  # a card astropy parses only when it is read
        raise FrameError(f"{path}: a header card cannot be parsed: {str(exc).split(', fix it')[0]}") from None
    if copy is None:
        return frame
    return dataclasses.replace(frame, format=copy.format, decoded=copy.path, source_stamp=source_stamp)


def _frame(
    path: Path, headers: list[Any], offsets: list[int], file_size: int, stamp: tuple[int, int, int], *,
    imgtype: str | None,
) -> Frame:  # fmt: skip
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
        outer = primary if index > 0 and not camera_layout else None  # a plain image's camera words may be there
        plane = _plane(path, name, header, offsets[index], file_size, trust_sections=trust,
                       camera_layout=camera_layout, outer=outer)  # fmt: skip
        planes.append(plane)
    if len({p.name for p in planes}) != len(planes):
        raise FrameError(f"{path}: two amplifiers share a name")
    pixels = sum(p.raw_shape[0] * p.raw_shape[1] for p in planes)
    if pixels > MAX_FILE_PIXELS:
        raise FrameError(f"{path}: holds {pixels} pixels (rule: at most {MAX_FILE_PIXELS} a file): not read")
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
        "binning": f"{_binning(path, primary, ('XBINNING', 'CCDBINX', 'BINX'))}x"
                   f"{_binning(path, primary, ('YBINNING', 'CCDBINY', 'BINY'))}",
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
                 stamp, temperature=temperature, cfa=_cfa(primary),
                 set_temperature=_number(path, primary, ("SET-TEMP", "SETTEMP", "CCD-SET"), None))  # fmt: skip


#: The words that describe a colour sensor's mosaic (MaxIm DL, N.I.N.A., SharpCap, Siril).
CFA_WORDS = ("BAYERPAT", "XBAYROFF", "YBAYROFF", "ROWORDER")


def _cfa(primary: Any) -> tuple[tuple[str, Any], ...]:
    if not str(primary.get("BAYERPAT", "")).strip():
        return ()
    return tuple((word, primary[word]) for word in CFA_WORDS if word in primary)


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


#: A folder name's longest (a file system allows 255 bytes; a 16-amplifier layout alone takes ~210).
MAX_NAME = 200


def safe_name(text: str) -> str:
    """A folder name from any text: `SDSSr_65mm~empty_1` -> `SDSSr_65mm_empty_1`; nothing -> `none`.

    A name longer than MAX_NAME keeps its beginning and ends with a digest of the whole text, so
    two texts never share a folder and no name is too long for the file system.
    """
    name = _SAFE.sub("_", text).strip("_") or "none"
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 17]}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
