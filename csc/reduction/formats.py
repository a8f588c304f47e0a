"""The files observers have, as plain FITS the frame reader reads band by band (issue 25).

A raw frame's pixels are read with `os.pread` at their byte offset (`frames.Frame.read`), which
needs an uncompressed FITS file. Every other format is decoded once into one in a private cache
folder (removed when the process ends), and the frame keeps the original's name:

- tile-compressed FITS (`.fits.fz`, `.fz`: fpack, astropy, N.I.N.A.), any HDU compressed; a
  single image comes out as the primary HDU with the compressed extension's words beside the
  primary's (fpack leaves the primary empty);
- gzip'd FITS (`.fits.gz`), with a bound on what it may inflate to;
- XISF (PixInsight; N.I.N.A. and others write it) through the `xisf` package: the first image,
  which must have one channel (a mosaic or a monochrome frame, never a debayered RGB); its
  FITSKeywords become the header, and the XISF properties a raw frame's words where the
  keywords lack them (exposure, start time, filter, sensor temperature, binning, gain).

Which format a file is comes from its first bytes, not its name. A file in none of them is a
`FrameError` naming what it is and what obsq reads. `write_like` writes an image in the format
its input came in (a calibrated light keeps the input's format).
"""

from __future__ import annotations

import atexit
import gzip
import os
import shutil
import stat
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

#: Suffixes of the files a folder's survey reads (the format itself comes from the first bytes).
READABLE_SUFFIXES = (".fits", ".fit", ".fts", ".fz", ".gz", ".xisf")
#: Image files obsq does not read; in a folder they are accounted for (named, with the reason), not skipped.
OTHER_IMAGE_SUFFIXES = {
    ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".ser": "SER video",
    ".cr2": "camera raw", ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw", ".dng": "camera raw",
    ".raf": "camera raw", ".orf": "camera raw", ".bmp": "BMP",
}  # fmt: skip
WHAT_OBSQ_READS = "obsq reads FITS (.fits .fit .fts), tile-compressed FITS (.fz), gzip'd FITS (.gz) and XISF"
#: The most a gzip'd file may inflate to (a 2^28-pixel float64 image and its headers).
MAX_INFLATED_BYTES = (1 << 31) + (1 << 24)
_COPY_BYTES = 1 << 20
#: XISF properties (the specification's names) that stand for FITS words a raw frame is read by.
XISF_PROPERTIES = {
    "Instrument:ExposureTime": "EXPTIME",
    "Observation:Time:Start": "DATE-OBS",
    "Instrument:Filter:Name": "FILTER",
    "Instrument:Sensor:Temperature": "CCD-TEMP",
    "Instrument:Sensor:TargetTemperature": "SET-TEMP",
    "Instrument:Camera:XBinning": "XBINNING",
    "Instrument:Camera:YBinning": "YBINNING",
    "Instrument:Camera:Gain": "EGAIN",
    "Instrument:Camera:Name": "INSTRUME",
}


class FormatError(ValueError):
    """A file in no format obsq reads, or one it cannot decode; the message says which and why."""


class OtherImageError(FormatError):
    """An image file of a format obsq does not read (TIFF, PNG, a camera's raw…), known by its suffix."""


@dataclass(frozen=True)
class Decoded:
    """A file's pixels as a plain FITS copy: `path` to read, `format` of the original ("fits.fz", "xisf"…)."""

    path: Path
    format: str


def sniff(path: Path) -> str:
    """The format of a file from its first bytes: "fits", "gzip", "xisf"; FormatError naming it if none."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opened to be refused must not wait for a writer
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise FormatError("not a regular file (a pipe, a device or a socket): not read")
        head = os.pread(handle, 16, 0)
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(handle)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"XISF0100"):
        return "xisf"
    kind = OTHER_IMAGE_SUFFIXES.get(path.suffix.lower())
    if kind:
        raise OtherImageError(f"a {kind} file, not read: {WHAT_OBSQ_READS}")
    raise FormatError(f"not a FITS or XISF file (it does not begin with SIMPLE or XISF0100); {WHAT_OBSQ_READS}")


class _Cache:
    """Decoded copies, one per (file, size, modification time), in a folder removed at exit."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._copies: dict[tuple[Path, int, int], Decoded] = {}
        self._lock = threading.Lock()

    def folder(self) -> Path:
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="obsq-decoded-"))
                atexit.register(shutil.rmtree, self._folder, True)
            return self._folder

    def get(self, key: tuple[Path, int, int]) -> Decoded | None:
        with self._lock:
            found = self._copies.get(key)
        return found if found is not None and found.path.exists() else None

    def put(self, key: tuple[Path, int, int], decoded: Decoded) -> None:
        with self._lock:
            self._copies[key] = decoded


_CACHE = _Cache()


def decoded(path: Path, kind: str, *, tile_compressed: bool = False) -> Decoded:
    """A plain-FITS copy of `path` (of format `kind` as `sniff` gave it, or a FITS with compressed HDUs)."""
    status = path.stat()
    key = (path.resolve(), status.st_size, status.st_mtime_ns)
    found = _CACHE.get(key)
    if found is not None:
        return found
    made: list[Path] = []
    try:
        if kind == "xisf":
            result = Decoded(_new_copy(made, lambda out: _xisf_to_fits(path, out)), "xisf")
        elif kind == "gzip":
            inflated = _new_copy(made, lambda out: _inflate(path, out))
            if _has_compressed_hdus(inflated):
                inflated = _new_copy(made, lambda out: _uncompress_fits(made[0], out))
            result = Decoded(inflated, "fits.gz")
        elif tile_compressed:
            result = Decoded(_new_copy(made, lambda out: _uncompress_fits(path, out)), "fits.fz")
        else:
            raise FormatError(f"a {kind} file needs no decoding")
    except Exception as exc:
        for copy in made:
            copy.unlink(missing_ok=True)
        if isinstance(exc, FormatError):
            raise
        if isinstance(exc, OSError | ValueError | KeyError | TypeError | IndexError | zlib.error | EOFError):
            raise FormatError(f"cannot be decoded as {kind} ({type(exc).__name__}: {str(exc)[:200]})") from None
        raise
    for copy in made[:-1]:
        copy.unlink(missing_ok=True)
    _CACHE.put(key, result)
    return result


def _new_copy(made: list[Path], write: Callable[[Any], None]) -> Path:
    """A new file in the cache folder, written by `write(binary file)`; added to `made`."""
    handle, name = tempfile.mkstemp(suffix=".fits", dir=_CACHE.folder())
    made.append(Path(name))
    with open(handle, "wb") as out:
        write(out)
    return Path(name)


def _inflate(path: Path, out: Any) -> None:
    written = 0
    with gzip.open(path, "rb") as source:
        while chunk := source.read(_COPY_BYTES):
            written += len(chunk)
            if written > MAX_INFLATED_BYTES:
                raise FormatError(f"inflates to more than {MAX_INFLATED_BYTES} bytes (rule: at most that): not read")
            out.write(chunk)


def _has_compressed_hdus(path: Path) -> bool:
    with fits.open(path, memmap=False, disable_image_compression=True) as hdul:
        return any(h.header.get("ZIMAGE") for h in hdul)


def _uncompress_fits(source: Path, out: Any) -> None:
    """Every HDU uncompressed; one image alone goes to the primary, with the primary's words kept beside its own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(source, memmap=False) as hdul:
            images = [h for h in hdul if h.is_image and h.data is not None and h.header.get("NAXIS", 0) >= 1]
            primary = hdul[0].header.copy()
            if len(images) == 1:
                header = _merged(primary, images[0].header)
                hdus = fits.HDUList([fits.PrimaryHDU(images[0].data, header=header)])
            else:
                hdus = fits.HDUList([fits.PrimaryHDU(header=_plain(primary))])
                hdus += [fits.ImageHDU(h.data, header=_plain(h.header)) for h in images]
            hdus.writeto(out, output_verify="silentfix")


#: Words that describe an HDU's structure (or its compression), never carried from one header to another.
_STRUCTURE = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT", "GCOUNT",
              "BZERO", "BSCALE", "CHECKSUM", "DATASUM", "EXTNAME", "ZIMAGE", "ZQUANTIZ", "ZDITHER0"}  # fmt: skip


def _plain(header: fits.Header) -> fits.Header:
    return fits.Header([card for card in header.cards if card.keyword not in _STRUCTURE and card.keyword])


def _merged(primary: fits.Header, image: fits.Header) -> fits.Header:
    merged = _plain(primary)
    for card in _plain(image).cards:
        if card.keyword in ("COMMENT", "HISTORY"):
            merged.append(card)
        else:
            merged[card.keyword] = (card.value, card.comment)
    return merged


def _xisf_to_fits(path: Path, out: Any) -> None:
    from xisf import XISF  # the XISF reader is loaded only for XISF files

    try:
        reader = XISF(str(path))
        images = reader.get_images_metadata()
    except Exception as exc:  # the library raises what its parser meets; it is a file that cannot be read
        raise FormatError(f"not a readable XISF file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not images:
        raise FormatError("an XISF file with no image")
    meta = images[0]
    shape = meta.get("geometry", ())  # (width, height, channels); as the XML writes it, "w:h:c"
    geometry = [int(part) for part in (shape if isinstance(shape, tuple) else str(shape).split(":")) if part != ""]
    channels = geometry[2] if len(geometry) > 2 else 1
    if channels != 1:
        raise FormatError(
            f"an XISF image of {channels} channels ({meta.get('colorSpace', '')}): a raw frame has one "
            "(a monochrome frame or a colour sensor's mosaic, not a debayered image)"
        )
    try:
        data: npt.NDArray[Any] = reader.read_image(0)[:, :, 0]
    except Exception as exc:
        raise FormatError(f"its image cannot be decoded ({type(exc).__name__}: {str(exc)[:200]})") from None
    header = xisf_header(meta)
    fits.PrimaryHDU(np.ascontiguousarray(data), header=header).writeto(out, output_verify="silentfix")


def xisf_header(meta: dict[str, Any]) -> fits.Header:
    """A FITS header from an XISF image's FITSKeywords, then its properties for the words they lack."""
    header = fits.Header()
    for name, entries in (meta.get("FITSKeywords") or {}).items():
        keyword = str(name).strip().upper()
        if keyword in _STRUCTURE or not keyword or len(keyword) > 8:
            continue
        for entry in entries:
            value = fits_value(str(entry.get("value", "")))
            comment = str(entry.get("comment", ""))[:60]
            if keyword in ("COMMENT", "HISTORY"):
                header.append((keyword, str(value)))
            else:
                header[keyword] = (value, comment)
    for name, keyword in XISF_PROPERTIES.items():
        prop = (meta.get("XISFProperties") or {}).get(name)
        if keyword in header or not isinstance(prop, dict) or "value" not in prop:
            continue
        value = prop["value"]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, int | float | str | bool):
            header[keyword] = str(value).rstrip("Z") if keyword == "DATE-OBS" else value
    return header


def fits_value(text: str) -> str | int | float | bool:
    """A FITS keyword's value as XISF stores it (FITS syntax: 'a string', 12, 1.5E3, T): the typed value."""
    text = text.strip()
    if text.startswith("'"):
        return text[1:].rstrip().removesuffix("'").replace("''", "'").rstrip()
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def suffix_of(fmt: str) -> str:
    """The file suffix of a format as `Frame.format` names it ("fits.fz" -> ".fits.fz"; plain FITS ".fits")."""
    return {"fits.fz": ".fits.fz", "fits.gz": ".fits.gz", "xisf": ".xisf"}.get(fmt, ".fits")


def write_like(fmt: str, path: Path, data: npt.NDArray[Any], header: fits.Header) -> Path:
    """Write an image in the format an input came in ("fits", "fits.fz", "fits.gz", "xisf"); the path written.

    `path` is the output's stem with the suffix of the format added; the file appears whole
    (written beside, then renamed).
    """
    target = path.with_name(path.name + suffix_of(fmt))
    partial = target.with_name(f".{target.name}.partial")
    if fmt == "xisf":
        from xisf import XISF

        keywords = {card.keyword: [{"value": _xisf_text(card.value), "comment": card.comment}]
                    for card in _plain(header).cards if card.keyword not in ("COMMENT", "HISTORY")}  # fmt: skip
        XISF.write(str(partial), data[:, :, None], creator_app="obsq", image_metadata={"FITSKeywords": keywords},
                   codec="lz4hc", shuffle=True)  # fmt: skip
    elif fmt == "fits.fz":
        # lossless: astropy's default quantises floats to sigma/16 (as fpack does), which a calibrated image must not
        image = fits.CompImageHDU(data, header=_plain(header), compression_type="GZIP_2", quantize_level=0.0)
        fits.HDUList([fits.PrimaryHDU(), image]).writeto(partial)
    elif fmt == "fits.gz":
        with gzip.open(partial, "wb") as out:
            fits.PrimaryHDU(data, header=header).writeto(out)
    else:
        fits.PrimaryHDU(data, header=header).writeto(partial)
    partial.replace(target)
    return target


def _xisf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
