"""Light frames calibrated with the repository's masters (issue 25), as filabres does for each science image.

For each light, the masters of its signature are looked up at its time: the certified one
valid then, else the nearest in time (said so); a master whose verification failed is never
used. The steps are the ones `corrected_plane` does for the masters' own inputs — overscan
(where the camera has one), trim, bias, dark scaled to the light's dark time, flat — plus an
optional cosmetic correction: pixels the master dark shows hot (beyond HOT_SIGMA robust sigma
of its dark current) replaced by the median of their same-colour neighbours.

A light is calibrated only with a bias and a flat of its signature (and filter); a missing
dark is said in its account and header (its dark current stays). The output keeps the input's
format (`formats.write_like`), header and Bayer words, with the masters used, their distance in
time and the steps done written into it; an output that exists is left alone unless `force`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from obsq.csc.ocps.pipelines import corrected_plane, read_master
from obsq.csc.ocps.repository import Lookup, Repository, RepositoryError
from obsq.csc.reduction.formats import suffix_of, write_like
from obsq.csc.reduction.frames import Frame, signature_key

Array = npt.NDArray[np.float32]
#: A pixel is hot where its dark current is this many robust sigma above the median (cosmetic correction).
HOT_SIGMA = 5.0
#: Masters a light must have; a dark is used where there is one.
REQUIRED = ("bias", "flat")
#: Words of a raw header that describe its layout or would make the output look raw; not carried over.
_NOT_CARRIED = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE", "DATASEC",
                "BIASSEC", "TRIMSEC", "CHECKSUM", "DATASUM", "PCOUNT", "GCOUNT", "ZIMAGE"}  # fmt: skip


@dataclass
class LightResult:
    """One light: calibrated (`output`) or why not (`reason`), with the masters and steps."""

    path: Path
    output: Path | None = None
    reason: str = ""
    masters: dict[str, str] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hot_pixels: int = 0
    status: str = "calibrated"  # calibrated | exists | not calibrated

    def row(self) -> dict[str, Any]:
        return {"file": str(self.path), "status": self.status, "output": str(self.output or ""),
                "reason": self.reason, "masters": self.masters, "steps": self.steps, "notes": self.notes,
                "hot_pixels": self.hot_pixels}  # fmt: skip


def find_masters(repo: Repository, frame: Frame) -> tuple[dict[str, Lookup], dict[str, str]]:
    """The masters for a light (bias, dark, flat of its filter), and for each one missing, why."""
    found: dict[str, Lookup] = {}
    missing: dict[str, str] = {}
    for type_ in ("bias", "dark", "flat"):
        try:
            found[type_] = repo.find(type_, frame.signature, frame.mjd, frame.filter if type_ == "flat" else "")
        except RepositoryError as exc:
            what = f"no usable master {type_}" + (f" of filter {frame.filter}" if type_ == "flat" else "")
            missing[type_] = f"{what} for its signature" + (" (only failed ones)" if "failed" in str(exc) else "")
    return found, missing


def output_path(frame: Frame, out: Path, relative: Path | None) -> Path:
    """The output's stem: the input's place under `out` (relative to the folder it was found in), name + `_cal`."""
    name = frame.path.name
    for suffix in (".fits.fz", ".fits.gz", ".fit.gz", ".fts.gz", ".fz", ".gz", ".fits", ".fit", ".fts", ".xisf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    folder = out / relative.parent if relative is not None else out
    return folder / f"{name}_cal"


def calibrate_light(
    repo: Repository, frame: Frame, out: Path, *, relative: Path | None = None, cosmetic: bool = False,
    force: bool = False,
) -> LightResult:  # fmt: skip
    """Calibrate one light into `out`; the result says what was done, or why not (nothing written then)."""
    result = LightResult(frame.path)
    stem = output_path(frame, out, relative)
    target = stem.with_name(stem.name + suffix_of(frame.format))
    lookups, missing = find_masters(repo, frame)
    for type_, lookup in lookups.items():
        certified = "certified" if lookup.certified else "nearest, not certified"
        result.masters[type_] = f"product {lookup.product.id} ({certified}, {lookup.distance_days:.2f} d away)"
    absent = [reason for type_, reason in missing.items() if type_ in REQUIRED]
    if absent:
        result.status, result.reason = "not calibrated", "; ".join(absent)
        return result
    if "dark" in missing:
        result.notes.append(f"{missing['dark']}: its dark current stays")
    if target.exists() and not force:
        result.status, result.output = "exists", target
        result.reason = "calibrated before (give --force to calibrate it again)"
        return result
    masters = {type_: read_master(repo, lookup.product) for type_, lookup in lookups.items()}  # a dark as a rate
    planes: dict[str, Array] = {}
    for plane in frame.planes:
        missing_amp = [t for t, m in masters.items() if plane.name not in m]
        if missing_amp:
            result.status = "not calibrated"
            result.reason = f"the master {missing_amp[0]} has no amplifier {plane.name}"
            return result
        planes[plane.name] = corrected_plane(frame, plane, masters)
    result.steps = (
        (["overscan"] if any(p.overscan is not None for p in frame.planes) else [])
        + ["trim"] * any(p.data != (slice(0, p.raw_shape[0]), slice(0, p.raw_shape[1])) for p in frame.planes)
        + ["bias"]
        + (["dark"] if "dark" in masters else [])
        + ["flat"]
    )
    header = _input_header(frame)
    if cosmetic and "dark" in masters:
        for name, image in planes.items():
            result.hot_pixels += fix_hot_pixels(image, masters["dark"][name], _cfa_step(header))
        result.steps.append(f"cosmetic ({result.hot_pixels} hot pixels)")
    elif cosmetic:
        result.notes.append("no cosmetic correction: it needs a master dark")
    _describe(header, frame, result, lookups)
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(planes) == 1:
        (plane,) = frame.planes
        _shift_bayer(header, plane.data)
        result.output = write_like(frame.format, stem, next(iter(planes.values())), header)
    else:  # a camera of several amplifiers: one extension each, as it came
        result.output = _write_amplifiers(target, header, planes)
    return result


def _input_header(frame: Frame) -> fits.Header:
    """The light's own words (its primary's, and a plain image's extension's), less the layout's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(frame.pixels, memmap=False, lazy_load_hdus=True) as hdul:
            header = fits.Header([c for c in hdul[0].header.cards if c.keyword not in _NOT_CARRIED and c.keyword])
            if len(frame.planes) == 1 and len(hdul) > 1 and hdul[0].header.get("NAXIS", 0) == 0:
                for card in hdul[1].header.cards:
                    if card.keyword and card.keyword not in _NOT_CARRIED and card.keyword not in header:
                        header.append(card)
    return header


def _describe(header: fits.Header, frame: Frame, result: LightResult, lookups: dict[str, Lookup]) -> None:
    from obsq.csc.ocps.pipelines import SOFTWARE

    header["CALSTAT"] = ("".join(s[0].upper() for s in ("bias", "dark", "flat") if s in lookups), "B D F applied")
    header["BUNIT"] = ("ADU", "calibrated, flat-fielded")
    for type_, lookup in lookups.items():  # HIERARCH cards without comments: each fits one 80-character card
        word = f"HIERARCH OBSQ {type_.upper()}"
        header[word] = lookup.product.id
        header[f"{word} DT"] = round(lookup.distance_days, 4)  # days from the light
        header[f"{word} CERT"] = lookup.certified
        header[f"{word} FILE"] = Path(lookup.product.path).name[:40]
    header["HIERARCH OBSQ STEPS"] = ",".join(result.steps)[:50]
    header["HIERARCH OBSQ INPUT"] = frame.path.name[:50]
    header.add_history(f"calibrated by {SOFTWARE}: {', '.join(result.steps)}")
    for type_, text in result.masters.items():
        header.add_history(f"{type_}: {text}")
    header.add_history(f"signature: {signature_key(frame.signature)}")
    for note in result.notes:
        header.add_history(note)


def _cfa_step(header: fits.Header) -> int:
    """2 for a colour sensor's mosaic (its neighbours of the same colour are two pixels away), else 1."""
    return 2 if str(header.get("BAYERPAT", "")).strip() else 1


def _shift_bayer(header: fits.Header, data: tuple[slice, slice]) -> None:
    """A trim that starts on an odd row or column moves the mosaic's origin: XBAYROFF/YBAYROFF follow."""
    if not str(header.get("BAYERPAT", "")).strip():
        return
    rows, cols = data
    for word, start in (("XBAYROFF", cols.start), ("YBAYROFF", rows.start)):
        if start % 2:
            header[word] = (int(header.get(word, 0)) + start) % 2


def fix_hot_pixels(image: Array, dark: Array, step: int = 1) -> int:
    """Replace, in place, the pixels hot in `dark` by the median of their 8 neighbours `step` apart; how many."""
    finite = dark[np.isfinite(dark)]
    if finite.size == 0:
        return 0
    median = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - median))) or float(np.std(finite)) or 1e-12
    hot = np.argwhere(dark > median + HOT_SIGMA * sigma)
    if hot.size == 0:
        return 0
    hot_mask = np.zeros(dark.shape, bool)
    hot_mask[tuple(hot.T)] = True
    height, width = image.shape
    offsets = [(dy * step, dx * step) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    rows, cols = hot[:, 0], hot[:, 1]
    neighbours = np.full((len(hot), len(offsets)), np.nan, np.float32)
    for k, (dy, dx) in enumerate(offsets):
        r, c = rows + dy, cols + dx
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        values = np.full(len(hot), np.nan, np.float32)
        values[inside] = image[r[inside], c[inside]]
        values[inside & hot_mask[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]] = np.nan
        neighbours[:, k] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pixel whose neighbours are all hot keeps its value
        fill = np.nanmedian(neighbours, axis=1)
    good = np.isfinite(fill)
    image[rows[good], cols[good]] = fill[good]  # every neighbour was read before any pixel is written
    return int(good.sum())


def _write_amplifiers(target: Path, header: fits.Header, planes: dict[str, Array]) -> Path:
    partial = target.with_name(f".{target.name}.partial")
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    hdus += [fits.ImageHDU(data, fits.Header({"EXTNAME": name, "AMPNAME": name})) for name, data in planes.items()]
    fits.HDUList(hdus).writeto(partial, overwrite=True)
    partial.replace(target)
    return target
