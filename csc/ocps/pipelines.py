"""The pipelines: master bias/dark/flat, verification, the flat-level check, counts and the PTC.

Each pipeline is a plain function of (repository, config) that returns a JSON-able result; the
numeric work is `obsq.csc.reduction`'s, this module reads the files, writes the products and
records them. `catalog.py` names them; the reduction service runs them in its worker processes,
`obsq reduce` in the foreground.
Inputs are checked before anything is written: an empty set, a file that is not a usable
frame, a frame of another type, mixed signatures, or a flat without a bias all raise
`PipelineError` naming the file or the signature, and the repository is left untouched.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from obsq.csc import __version__
from obsq.csc.acquired import AcquiredImages
from obsq.csc.clock import perf_counter
from obsq.csc.ocps.repository import Product, Repository, RepositoryError
from obsq.csc.reduction import ptc as ptc_core
from obsq.csc.reduction.combine import clipped_stats, clipped_stats_many
from obsq.csc.reduction.frames import Frame, FrameError, Plane, describe_difference, open_frame, signature_key
from obsq.csc.reduction.stack import Corrections, Input, combine_plane
from obsq.csc.reduction.verify import (
    CHECK_SAMPLE,
    HEADER_CHECKS,
    Check,
    bias_or_dark_checks,
    check_flat_level,
    check_header,
    flat_checks,
    shot_noise_reference,
    verify_counts,
)

Array = npt.NDArray[np.float32]
Progress = Callable[[str, int, int], None]
PERCENTILES = (0, 5, 16, 50, 84, 95, 100)
SOFTWARE = f"obsq {__version__}"


class PipelineError(ValueError):
    """A request that cannot be run; the message names the file, signature or field."""


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


# --- inputs ------------------------------------------------------------------------------------


def load_frames(
    paths: Sequence[str | Path], kind: str | None = None, *, imgtype: str | None = None, min_frames: int = 1
) -> list[Frame]:
    """Open every input (as `imgtype` if given); all must be readable, of `kind` when given, and of one signature."""
    if not paths:
        raise PipelineError(f"the input set is empty: no {kind.lower() if kind else 'frame'}s to process")
    frames = []
    for path in paths:
        try:
            frames.append(open_frame(path, imgtype=imgtype, now=perf_counter))
        except FrameError as exc:
            raise PipelineError(str(exc)) from None
    if kind is not None:
        for frame in frames:
            if frame.imgtype != kind:
                raise PipelineError(f"{frame.path}: is a {frame.imgtype}, not a {kind}")
    if len(frames) < min_frames:
        raise PipelineError(f"{len(frames)} frames, fewer than the minimum {min_frames} for a master")
    first = frames[0]
    for frame in frames[1:]:
        if frame.signature != first.signature:
            raise PipelineError(
                f"mixed signatures in one request: {frame.path} differs from {first.path} "
                f"({describe_difference(frame.signature, first.signature)})"
            )
        if kind == "FLAT" and frame.filter != first.filter:
            raise PipelineError(
                f"mixed filters in one flat: {frame.path} has {frame.filter}, {first.path} {first.filter}"
            )
    return frames


def _overscan(raw: Array, plane: Plane) -> float:
    if plane.overscan is None:
        return 0.0
    values = raw[plane.overscan]
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else 0.0


def overscan_level(frame: Frame, plane: Plane) -> float:
    """The median of an amplifier's serial overscan (0 for an image without one)."""
    return _overscan(frame.read(plane), plane) if plane.overscan is not None else 0.0


def corrected_plane(frame: Frame, plane: Plane, masters: dict[str, dict[str, Array]], *, row_step: int = 1) -> Array:
    """Overscan, trim, bias, dark (scaled by dark time) and flat, as far as masters are given.

    `row_step` > 1: only every row_step-th row of the data section (a statistic's even sample).
    """
    rows, cols = plane.data
    if row_step > 1 and plane.overscan is None:  # only the rows sampled are read
        image = frame.read(plane, range(rows.start, rows.stop, row_step))[:, cols]
    else:
        raw = frame.read(plane)
        image = raw[rows.start : rows.stop : row_step, cols] - np.float32(_overscan(raw, plane))
    if "bias" in masters:
        image -= masters["bias"][plane.name][::row_step]
    if "dark" in masters:
        image -= masters["dark"][plane.name][::row_step] * np.float32(frame.darktime)
    if "flat" in masters:
        flat = masters["flat"][plane.name][::row_step]
        image = np.where(flat > 0, image / np.where(flat > 0, flat, 1), 0).astype(np.float32)
    return image


#: Pixels of each amplifier a verification statistic is computed from at most (evenly spaced rows, every
#: column): the clipped sigma of 2^16 pixels is within ~0.3 % (1 sigma) of the whole's, far inside the
#: checks' 5 %, and their mean within sigma/256 of it, against the check's |mean| < sigma.
VERIFY_PIXELS = 1 << 16
#: Frames whose checks' clipping is done together (`clipped_stats_many`): a thousand small frames' passes
#: cost a few array operations per batch, and a batch holds at most VERIFY_BATCH x VERIFY_PIXELS values.
VERIFY_BATCH = 64


def verify_row_step(plane: Plane) -> int:
    """Every how many rows a verification statistic of `plane` samples (1: all of them)."""
    rows, cols = plane.shape
    return max(1, rows * cols // VERIFY_PIXELS)


def read_master(repo: Repository, product: Product) -> dict[str, Array]:
    """A master's planes by amplifier; a dark as a rate (ADU/s) however it is stored.

    A single image is in the primary HDU (as any tool writes one); a camera of several amplifiers
    has one extension each (AMPNAME). A dark stored in ADU at its exposure (UNITS 'ADU', as obsq
    writes it now) is divided by its DARKTIME (else EXPTIME); one stored as a rate is as it is.
    """
    with fits.open(repo.path_of(product)) as hdul:
        primary = hdul[0].header
        if hdul[0].data is not None:
            planes = {str(primary.get("AMPNAME", "IMAGE")): np.asarray(hdul[0].data, np.float32)}
        else:
            planes = {h.header["AMPNAME"]: np.asarray(h.data, np.float32) for h in hdul[1:] if "AMPNAME" in h.header}
        if product.type == "dark" and str(primary.get("UNITS", "ADU/s")).strip() == "ADU":
            exposure = float(primary.get("DARKTIME", primary.get("EXPTIME", 0.0)) or 0.0)
            if not exposure > 0:
                raise PipelineError(f"{repo.path_of(product)}: a dark in ADU with no exposure (DARKTIME/EXPTIME)")
            planes = {name: data / np.float32(exposure) for name, data in planes.items()}
    return planes


#: IMAGETYP of a master, as N.I.N.A., PixInsight (WBPP), Siril and MaxIm DL name them.
MASTER_TYPES = {"bias": "Master Bias", "dark": "Master Dark", "flat": "Master Flat"}


def master_stem(type_: str, frames: Sequence[Frame]) -> str:
    """A master's file name as the calibration library names them: `master-dark_180s_GAIN100_OFFSET50_T-10C`."""
    first = frames[0]
    parts = [f"master-{type_}"]
    if type_ == "dark":
        parts.append(f"{float(np.mean([f.exptime for f in frames])):g}s")
    if type_ == "flat":
        parts.append(first.filter)
    parts += [f"{word.upper()}{first.signature[word]:g}" for word in ("gain", "offset") if word in first.signature]
    if "temperature_band" in first.signature:
        parts.append(f"T{first.signature['temperature_band']:g}C")
    if first.signature.get("binning", "1x1") != "1x1":
        parts.append(f"BIN{first.signature['binning']}")
    return "_".join(parts)


#: Per master type: the masters its frames are corrected with, and which of them must exist.
NEEDS: dict[str, tuple[list[str], list[str]]] = {
    "bias": ([], []),
    "dark": (["bias"], ["bias"]),
    "flat": (["bias", "dark"], ["bias"]),
}


def masters_for(repo: Repository, frames: list[Frame], type_: str) -> dict[str, Any]:
    """The masters a `type_` master of these frames is corrected with (PipelineError if a required one is missing)."""
    return _masters_for(repo, frames, *NEEDS[type_])


def _masters_for(
    repo: Repository, frames: list[Frame], types: Sequence[str], required: Sequence[str]
) -> dict[str, Any]:
    first = frames[0]
    mjd = float(np.mean([f.mjd for f in frames]))
    found: dict[str, Any] = {}
    for type_ in types:
        try:
            lookup = repo.find(type_, first.signature, mjd, first.filter if type_ == "flat" else "")
        except RepositoryError as exc:
            if type_ in required:
                failed = " (there are only ones that failed their verification)" if "only failed" in str(exc) else ""
                raise PipelineError(
                    f"no matching master {type_} for {first.imgtype.lower()}s of signature "
                    f"{signature_key(first.signature)}{failed}: build one first"
                ) from None
            continue
        found[type_] = lookup
    return found


# --- masters -----------------------------------------------------------------------------------


def _stats(data: Array) -> dict[str, float]:
    values = data[np.isfinite(data)]
    percentiles = np.percentile(values, PERCENTILES) if values.size else [np.nan] * len(PERCENTILES)
    mean, std = clipped_stats(values[:: max(1, values.size // 1_000_000)])
    return {"mean_clip": mean, "std_clip": std} | {
        f"p{p}": float(v) for p, v in zip(PERCENTILES, percentiles, strict=True)
    }


def _frame_scale(frame: Frame, masters: dict[str, dict[str, Array]]) -> float:
    """1 / a flat's clipped mean over all amplifiers after bias (and dark) removal."""
    samples = []
    for plane in frame.planes:
        image = corrected_plane(frame, plane, masters)
        samples.append(image.ravel()[:: max(1, image.size // 250_000)])
    mean, _ = clipped_stats(np.concatenate(samples))
    if not mean > 0:
        raise PipelineError(f"{frame.path}: flat level {mean:.1f} ADU after bias removal is not positive")
    return 1.0 / mean


def _master_writer(  # noqa: PLR0917 - one call site, every argument a part of the product
    type_: str,
    frames: list[Frame],
    used: dict[str, Any],
    products: dict[str, Array],
    stats: dict[str, Any],
    method: str,
) -> Callable[[Path], None]:
    """A master as other tools take it.

    One image in the primary HDU (a camera of several amplifiers: one extension each), IMAGETYP
    'Master …' beside OBSTYPE, the signature's usual words, a dark in ADU at its exposure (its
    rate in DARKCUR, and UNITS saying so).
    """
    first = frames[0]
    darktime = float(np.mean([f.darktime for f in frames]))

    def write(path: Path) -> None:
        header = fits.Header()
        header["IMAGETYP"] = (MASTER_TYPES[type_], "a master calibration")
        header["OBSTYPE"] = (type_.upper(), "master calibration")
        header["FILTER"] = first.filter if type_ == "flat" else "NONE"
        header["INSTRUME"] = (first.instrument or first.signature["detector"], "of the inputs")
        header["DATE-OBS"] = (_iso(min(f.mjd for f in frames)), "the first input's start (UTC)")
        header["DATE-BEG"] = (_iso(min(f.mjd for f in frames)), "the inputs' range: first")
        header["DATE-END"] = (_iso(max(f.mjd for f in frames)), "the inputs' range: last")
        header["MJD-OBS"] = min(f.mjd for f in frames)
        header["EXPTIME"] = (float(np.mean([f.exptime for f in frames])), "mean of the inputs (s)")
        if type_ == "dark":
            header["DARKTIME"] = (darktime, "(s) mean of the inputs: the ADU of this time")
        _signature_words(header, frames)
        for word, value in first.cfa:  # a colour sensor's mosaic stays one: never debayered
            header[word] = value
        header["NCOMBINE"] = len(frames)
        header["CMETHOD"] = method
        header["SOFTWARE"] = SOFTWARE
        header["UNITS"] = "relative" if type_ == "flat" else "ADU"
        header["BUNIT"] = ("" if type_ == "flat" else "ADU", "as CCDData reads it ('': dimensionless)")
        for key, value in first.signature.items():
            header[f"HIERARCH SIG {key.upper()}"] = value
        for i, frame in enumerate(frames):
            header[f"HIERARCH INPUT{i:03d}"] = frame.path.name
        for name, lookup in used.items():
            header[f"HIERARCH USED {name.upper()}"] = f"product {lookup.product.id} ({lookup.note})"
        images = {name: data * np.float32(darktime) if type_ == "dark" else data for name, data in products.items()}
        if type_ == "dark":
            rates = np.concatenate([d[np.isfinite(d)].ravel() for d in products.values()])
            header["DARKCUR"] = (float(np.median(rates)) if rates.size else 0.0, "median dark current (ADU/s)")
        single = len(images) == 1 and first.planes[0].name == "IMAGE"
        hdus: list[Any] = []
        for name, data in images.items():
            amp_header = header.copy() if single else fits.Header({"EXTNAME": name})
            amp_header["AMPNAME"] = name
            for key, value in stats["amps"][name].items():
                amp_header[f"HIERARCH {key.upper()}"] = value
            plane = first.plane(name)
            if plane.gain is not None:
                amp_header["EGAIN" if single else "GAIN"] = (plane.gain, "e-/ADU")
            if plane.read_noise_e is not None:
                amp_header["RDNOISE"] = plane.read_noise_e
            hdus.append(fits.PrimaryHDU(data, amp_header) if single else fits.ImageHDU(data, amp_header))
        if not single:
            hdus.insert(0, fits.PrimaryHDU(header=header))
        fits.HDUList(hdus).writeto(path)

    return write


def _signature_words(header: fits.Header, frames: Sequence[Frame]) -> None:
    """The words the inputs were taken with, as the acquisition software writes them."""
    first = frames[0]
    for word in ("gain", "offset"):
        if word in first.signature:
            header[word.upper()] = (first.signature[word], "the camera's setting")
    measured = [f.temperature for f in frames if f.temperature is not None]
    if measured:
        header["CCD-TEMP"] = (round(float(np.mean(measured)), 2), "mean measured of the inputs (C)")
    if first.set_temperature is not None:
        header["SET-TEMP"] = (first.set_temperature, "the cooler's set point (C)")
    x, _, y = str(first.signature.get("binning", "1x1")).partition("x")
    header["XBINNING"], header["YBINNING"] = int(x or 1), int(y or 1)
    if first.signature.get("readout"):
        header["READOUTM"] = first.signature["readout"]


def _iso(mjd: float) -> str:
    from astropy.time import Time

    return str(Time(mjd, format="mjd", scale="utc").isot)


def _band_progress(progress: Progress, stage: str, index: int, total: int) -> Callable[[int, int], None]:
    def report(done: int, bands: int) -> None:
        progress(stage, index * bands + done, total * bands)

    return report


def build_master(repo: Repository, config: dict[str, Any], progress: Progress = _quiet) -> dict[str, Any]:
    """Config: type (bias|dark|flat), inputs (paths), method, sigma, iterations, saturation, collection, force."""
    type_ = config["type"]
    if type_ not in ("bias", "dark", "flat"):
        raise PipelineError(f"master type {type_!r} is not one of bias, dark, flat")
    frames = load_frames(
        config["inputs"], type_.upper(), imgtype=config.get("imgtype"), min_frames=int(config.get("min_frames", 3))
    )
    first = frames[0]
    used = masters_for(repo, frames, type_)
    masters = {name: read_master(repo, lookup.product) for name, lookup in used.items()}
    method = config.get("method", "clipped_mean")
    options = {
        "method": method,
        "sigma": float(config.get("sigma", 3.0)),
        "iterations": int(config.get("iterations", 3)),
    }
    record = {
        "method": method, "sigma": options["sigma"], "iterations": options["iterations"],
        "masters_used": {k: {"id": v.product.id, "certified": v.certified, "note": v.note} for k, v in used.items()},
    }  # fmt: skip
    filter_ = first.filter if type_ == "flat" else ""
    if config.get("rerun"):  # a job run again after its worker died: what it had made already is its result
        made = [p for p in repo.built_from(type_, first.signature, filter_, [str(f.path) for f in frames])
                if p.config == record]  # fmt: skip
        if made:
            return _master_result(repo, made[-1], len(frames), record)
    saturation = config.get("saturation")
    if type_ == "dark":
        for frame in frames:
            if frame.darktime <= 0:
                raise PipelineError(f"{frame.path}: a dark with dark time {frame.darktime} s cannot be scaled to ADU/s")
    scales = {f.path: _frame_scale(f, masters) for f in frames} if type_ == "flat" else {}
    stats: dict[str, Any] = {"amps": {}}
    products: dict[str, Array] = {}
    rejected = 0
    total = len(first.planes)
    for index, plane in enumerate(first.planes):
        fix = Corrections(
            bias=masters.get("bias", {}).get(plane.name),
            dark_per_s=masters.get("dark", {}).get(plane.name),
            saturation=float(saturation) if saturation is not None else None,
        )
        inputs = [
            Input(
                f,
                f.plane(plane.name),
                offset=overscan_level(f, f.plane(plane.name)),
                scale=scales.get(f.path, 1.0 / f.darktime if type_ == "dark" else 1.0),
                darktime=f.darktime,
            )
            for f in frames
        ]
        result = combine_plane(
            inputs, fix, **options, progress=_band_progress(progress, f"{type_} {plane.name}", index, total)
        )
        products[plane.name] = result.data
        rejected += result.n_rejected
        levels = normalise_per_channel(result.data) if type_ == "flat" and first.colour else {}  # a light keeps
        stats["amps"][plane.name] = _stats(result.data) | {"n_bad": result.n_bad} | levels  # its colours
    stats["n_rejected"] = rejected
    stats["n_inputs"] = len(frames)
    if type_ == "bias":  # the read noise, measured: verification of darks and flats uses it where headers lack it
        for amp, (sigma, _) in measured_noise(frames, {}).items():
            stats["amps"][amp]["read_noise_adu"] = sigma
    if type_ == "flat":
        level = float(np.mean([1.0 / s for s in scales.values()]))
        stats["input_level_adu"] = level
    write = _master_writer(type_, frames, used, products, stats, method)

    product = repo.add_product(
        type_=type_, signature=first.signature, filter_=filter_,
        inputs=[str(f.path) for f in frames], mjds=[f.mjd for f in frames], config=record, software=SOFTWARE,
        stats=stats, collection=config.get("collection", "u/obsq/reduce"), suffix="fits", write=write,
        force=bool(config.get("force", False)), stem=master_stem(type_, frames),
    )  # fmt: skip
    _write_integration_log(repo, product, frames, record, stats)
    progress(f"{type_} written", total, total)
    return _master_result(repo, product, len(frames), record)


def normalise_per_channel(flat: Array) -> dict[str, float]:
    """Divide, in place, each of a mosaic's four sub-lattices (2x2 colours) by its clipped mean; those means.

    A colour sensor's flat normalised over all its channels at once would carry the lamp's colour
    into every light it divides; per channel, it carries only the response of each pixel.
    """
    levels = {}
    for dy in (0, 1):
        for dx in (0, 1):
            channel = flat[dy::2, dx::2]
            mean, _ = clipped_stats(channel[np.isfinite(channel)].ravel())
            if not mean > 0:
                raise PipelineError(f"colour channel at row {dy}, column {dx} of the flat has level {mean:g}")
            channel /= np.float32(mean)
            levels[f"cfa_level_{dy}{dx}"] = float(mean)
    return levels


def _write_integration_log(
    repo: Repository, product: Product, frames: Sequence[Frame], record: dict[str, Any], stats: dict[str, Any]
) -> None:
    """The integration log beside the master (`….log`): what it was made of and how, as a person reads it."""
    path = repo.path_of(product)
    what = f"signature: {signature_key(product.signature)}" + (f", filter {product.filter}" if product.filter else "")
    lines = [f"{path.name}: product {product.id} v{product.version}, {product.type}, made by {SOFTWARE}", what,
             f"method: {record['method']}, sigma {record['sigma']}, {record['iterations']} iterations; "
             f"{stats.get('n_rejected', 0)} pixel values rejected",
             *(f"used {k}: product {v['id']} ({v['note']})" for k, v in record["masters_used"].items()),
             f"inputs ({len(frames)}):"]  # fmt: skip
    for frame in frames:
        temperature = f"  CCD-TEMP {frame.temperature:g}" if frame.temperature is not None else ""
        lines.append(f"  {frame.path}  exptime {frame.exptime:g} s  mjd {frame.mjd:.5f}{temperature}")
    for amp, values in stats["amps"].items():
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, int | float))
        lines.append(f"amplifier {amp}: {numbers}")
    log = path.with_suffix(".log")
    partial = log.with_name(f".{log.name}.partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(log)


def _master_result(repo: Repository, product: Product, n_inputs: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"product": product.id, "type": product.type, "version": product.version,
            "path": str(repo.path_of(product)), "filter": product.filter, "n_inputs": n_inputs,
            "masters_used": record["masters_used"]}  # fmt: skip


# --- verification ------------------------------------------------------------------------------


#: At most this many pairs of inputs measure the noise reference.
MAX_NOISE_PAIRS = 4


def noise_pairs(frames: Sequence[Frame]) -> list[tuple[Frame, Frame]]:
    """Consecutive inputs of equal dark time, as pairs (1st and 2nd, 3rd and 4th, …), at most MAX_NOISE_PAIRS."""
    by_time: dict[float, list[Frame]] = defaultdict(list)
    for frame in sorted(frames, key=lambda f: f.mjd):
        by_time[round(frame.darktime, 2)].append(frame)
    pairs = [pair for members in by_time.values() for pair in zip(members[0::2], members[1::2], strict=False)]
    return pairs[:MAX_NOISE_PAIRS]


def measured_noise(frames: Sequence[Frame], masters: dict[str, dict[str, Array]]) -> dict[str, tuple[float, float]]:
    """Per amplifier: one exposure's noise (ADU) and its mean signal (ADU), from pairs of the frames.

    A pair's difference holds only what changes from exposure to exposure — read noise, and the
    shot noise of the dark current or the light — so it measures what a single corrected
    exposure's noise should be, with no header and no model (the PTC's pair statistics).
    """
    variances: dict[str, list[float]] = defaultdict(list)
    means: dict[str, list[float]] = defaultdict(list)
    for first, second in noise_pairs(frames):
        for plane in first.planes:
            step = verify_row_step(plane)  # the same evenly spaced rows of both
            a = corrected_plane(first, plane, masters, row_step=step)
            b = corrected_plane(second, second.plane(plane.name), masters, row_step=step)
            point = ptc_core.pair_point(a, b, first.exptime)
            variances[plane.name].append(point.variance)
            means[plane.name].append(point.mean)
    return {amp: (float(np.sqrt(np.mean(v))), float(np.mean(means[amp]))) for amp, v in variances.items()}


@dataclass
class NoiseReference:
    """What each amplifier's corrected exposures are checked against, where it came from, and the header checks."""

    adu: dict[str, float]
    source: str
    checks: list[Check]
    gains: dict[str, str]


def noise_reference(
    type_: str, frames: list[Frame], masters: dict[str, dict[str, Array]], bias_stats: dict[str, Any] | None
) -> NoiseReference:
    """Measured from pairs of the inputs when there are pairs, else modelled from GAIN/RDNOISE headers."""
    others = {k: v for k, v in masters.items() if k not in (type_, "flat")}  # the signal before this correction
    measured = measured_noise(frames, others)
    reference: dict[str, float] = {}
    checks: list[Check] = []
    gains: dict[str, str] = {}
    for plane in frames[0].planes:
        amp, gain, header_noise_e = plane.name, plane.gain, plane.read_noise_e
        read_noise_adu = (bias_stats or {}).get("amps", {}).get(amp, {}).get("read_noise_adu")
        if read_noise_adu is None and gain and header_noise_e is not None:
            read_noise_adu = header_noise_e / gain
        if amp in measured:
            sigma, signal = measured[amp]
            reference[amp] = sigma
            if type_ == "bias" and gain and header_noise_e is not None:
                checks.append(check_header("READ_NOISE", amp, header_noise_e, sigma * gain, "e-"))
            if type_ == "dark" and gain and read_noise_adu is not None:
                checks.append(check_header("DARK_NOISE", amp, shot_noise_reference(read_noise_adu, signal, gain),
                                           sigma, "ADU (modelled: read and dark shot noise)"))  # fmt: skip
            if type_ == "flat":
                shot = sigma**2 - (read_noise_adu or 0.0) ** 2
                measured_gain = signal / shot if shot > 0 else math.nan
                gains[amp] = f"measured {measured_gain:.4g} e-/ADU from flat pairs"
                if gain:
                    checks.append(check_header("GAIN", amp, gain, measured_gain, "e-/ADU"))
                    gains[amp] += f"; header {gain:.4g}"
            continue
        step = verify_row_step(plane)
        signal = float(np.mean([clipped_stats(corrected_plane(f, f.plane(amp), others, row_step=step))[0]
                                for f in frames]))  # fmt: skip
        if not gain or read_noise_adu is None:
            raise PipelineError(
                f"{frames[0].path}: amplifier {amp}: no pair of inputs of equal exposure to measure the noise, and "
                "no GAIN and RDNOISE headers to model it: give at least two exposures of each time"
            )
        reference[amp] = shot_noise_reference(read_noise_adu, 0.0 if type_ == "bias" else signal, gain)
    pairs = len(noise_pairs(frames))
    source = f"measured from {pairs} pair{'s' * (pairs != 1)} of the inputs" if measured else "modelled from headers"
    return NoiseReference(reference, source, checks, gains)


def _check_row(check: Check, exposure: str) -> dict[str, Any]:
    return asdict(check) | {"exposure": exposure}


def verify_master(
    repo: Repository, config: dict[str, Any], progress: Progress = _quiet, job: str = "local"
) -> dict[str, Any]:
    """cp_verify: the exposures corrected with the candidate master, per amplifier; the verdict is stored."""
    product = repo.product(int(config["product"]))
    frames = load_frames(config["inputs"], product.type.upper(), imgtype=config.get("imgtype"))
    if signature_key(frames[0].signature) != product.sigkey:
        raise PipelineError(f"product {product.id} is for signature {product.sigkey}, the exposures are not")
    masters: dict[str, dict[str, Array]] = {product.type: read_master(repo, product)}
    required = {"bias": [], "dark": ["bias"], "flat": ["bias"]}[product.type]
    used = _masters_for(repo, frames, required, required)
    for type_, lookup in used.items():
        masters[type_] = read_master(repo, lookup.product)
    reference = noise_reference(product.type, frames, masters, used["bias"].product.stats if "bias" in used else None)
    rows: list[dict[str, Any]] = [_check_row(c, "inputs") for c in reference.checks]
    checks_of = bias_or_dark_checks if product.type in ("bias", "dark") else flat_checks
    for start in range(0, len(frames), VERIFY_BATCH):  # the clipping of a batch's planes done together
        batch = frames[start : start + VERIFY_BATCH]
        planes = [(f, p) for f in batch for p in f.planes]
        corrected = [corrected_plane(f, p, masters, row_step=verify_row_step(p)) for f, p in planes]
        stats = iter(clipped_stats_many(corrected, sample_size=CHECK_SAMPLE))
        for index, frame in enumerate(batch, start):
            checks = checks_of({p.name: next(stats) for p in frame.planes}, reference.adu, reference.source)
            rows.extend(_check_row(c, frame.path.name) for c in checks)
            progress(f"verify {product.type}", index + 1, len(frames))
    failed = [r for r in rows if not r["passed"] and r["name"] not in HEADER_CHECKS]
    disagree = [r for r in rows if not r["passed"] and r["name"] in HEADER_CHECKS]  # the header is what is wrong
    threshold = int(config.get("max_failures", 0))
    verdict = "passed" if len(failed) <= threshold else f"failed: {len(failed)} of {len(rows)} checks"
    repo.record_checks(job, f"verify_{product.type}", product.id, rows, rerun=bool(config.get("rerun")))
    repo.set_verified(product.id, verdict)
    return {"product": product.id, "type": product.type, "verdict": verdict, "n_checks": len(rows),
            "n_failed": len(failed), "summary": summarise(rows), "noise_reference": reference.source,
            "gains": reference.gains, "failures": [f"{r['name']} {r['amp']} {r['exposure']}: {r['detail']}"
                                                   for r in failed[:5]],
            "header_disagreements": [f"{r['name']} {r['amp']}: {r['detail']} ({r['value']:.0%} apart, more than "
                                     f"{r['limit']:.0%})" for r in disagree[:5]]}  # fmt: skip


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per check name: how many ran and how many passed."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = summary.setdefault(row["name"], {"run": 0, "passed": 0})
        entry["run"] += 1
        entry["passed"] += int(bool(row["passed"]))
    return summary


def flat_level(
    repo: Repository, config: dict[str, Any], progress: Progress = _quiet, job: str = "local"
) -> dict[str, Any]:
    """The misalignment check on flats: bias-subtracted level against 10,000 ADU for 6 s SDSSr flats.

    The bias is the overscan's; an amplifier without one (a real camera's single image) has the mean
    level of the set's own biases (`biases`) taken off, and without those its raw level is checked.
    """
    frames = load_frames(config["inputs"], "FLAT")
    bias_level = _bias_levels(load_frames(config["biases"], "BIAS")) if config.get("biases") else {}
    rows: list[dict[str, Any]] = []
    for index, frame in enumerate(frames):
        levels = [
            clipped_stats(corrected_plane(frame, p, {})[::4, ::4])[0]
            - (0.0 if p.overscan else bias_level.get(p.name, 0.0))
            for p in frame.planes
        ]
        check = check_flat_level(float(np.mean(levels)), frame.exptime, frame.filter)
        rows.append(_check_row(check, frame.path.name))
        progress("flat level", index + 1, len(frames))
    repo.record_checks(job, "flat_level", None, rows, rerun=bool(config.get("rerun")))
    failed = [r for r in rows if not r["passed"]]
    return {"passed": not failed, "levels": [r["value"] for r in rows],
            "detail": failed[0]["detail"] if failed else "flat levels as expected"}  # fmt: skip


def _bias_levels(biases: list[Frame]) -> dict[str, float]:
    """Each amplifier's mean level over some raw biases (for an amplifier without overscan)."""
    levels: dict[str, list[float]] = defaultdict(list)
    for frame in biases:
        for plane in frame.planes:
            levels[plane.name].append(clipped_stats(frame.read(plane)[plane.data][::4, ::4])[0])
    return {name: float(np.mean(values)) for name, values in levels.items()}


def count_check(repo: Repository, config: dict[str, Any], job: str = "local") -> dict[str, Any]:
    """Counts received (the acquired-images registry, by group id) against the counts the script asked for."""
    planned: Counter[tuple[str, str, float]] = Counter()
    for item in config["planned"]:
        planned[(item["imgtype"], item["filter"], round(float(item["exptime"]), 3))] += int(item["count"])
    images = AcquiredImages(config["registry"]).images(groupid=config["groupid"])
    taken: Counter[tuple[str, str, float]] = Counter(
        (i.imgtype, i.filter, round(i.exptime, 3)) for i in images if Path(i.path).exists()
    )
    checks = [_check_row(c, config["groupid"]) for c in verify_counts(planned, taken)]
    repo.record_checks(job, "counts", None, checks, rerun=bool(config.get("rerun")))
    failed = [c for c in checks if not c["passed"]]
    return {"passed": not failed, "checks": checks, "detail": "; ".join(f"{c['amp']}: {c['detail']}" for c in failed)}


# --- PTC ---------------------------------------------------------------------------------------


#: Markers cycled with ten colours: neighbouring amplifiers (C01, C02) differ in both, and seven markers against
#: ten colours repeat no pair before the 70th amplifier.
_PTC_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _ptc_plot(results: dict[str, ptc_core.PtcResult]) -> bytes:
    """Variance against mean per amplifier: each its own colour and marker; the axes fit the kept points.

    Rejected pairs outside the kept points' range are not allowed to stretch the axes: they are
    counted in the title instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8.5, 5.2), dpi=100)
    colours = plt.get_cmap("tab10")  # ten listed colours, called by number
    kept_x: list[float] = []
    kept_y: list[float] = []
    fits = []
    for number, (name, fit) in enumerate(sorted(results.items())):
        mean = np.array([p.mean for p in fit.points])
        var = np.array([p.variance for p in fit.points])
        kept = np.array(fit.kept, bool)
        colour, marker = colours(number % 10), _PTC_MARKERS[number % len(_PTC_MARKERS)]
        axes.plot(mean[kept], var[kept], marker, ms=4, ls="none", color=colour, mfc="none" if number % 2 else colour,
                  label=f"{name}: g={fit.gain:.3f} e-/ADU")  # fmt: skip
        fits.append((mean, var, kept, colour, fit))
        kept_x += [float(x) for x in mean[kept] if x > 0]
        kept_y += [float(y) for y in var[kept] if y > 0]
    outside = 0
    if kept_x and kept_y:
        x_low, x_high = min(kept_x) / 1.5, max(kept_x) * 1.5
        y_low, y_high = min(kept_y) / 1.5, max(kept_y) * 1.5
        for mean, var, kept, colour, fit in fits:
            inside = (~kept) & (mean >= x_low) & (mean <= x_high) & (var >= y_low) & (var <= y_high)
            outside += int(((~kept) & ~inside).sum())
            axes.plot(mean[inside], var[inside], "x", ms=5, color=colour)
            grid = np.linspace(max(x_low, 1.0), min(fit.turnoff, x_high), 200)
            axes.plot(grid, ptc_core.model(grid, fit.a00, fit.gain, fit.noise_e**2), "-", lw=0.8, color=colour)
            axes.axvline(fit.turnoff, ls=":", lw=0.8, color=colour)
        axes.set_xlim(x_low, x_high)
        axes.set_ylim(y_low, y_high)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("mean signal (ADU)")
    axes.set_ylabel("variance (ADU²)")
    beyond = f"; {outside} rejected pair(s) beyond the axes" if outside else ""
    axes.set_title(f"Photon transfer curve (EXPAPPROXIMATION fit; x = rejected; dotted = turnoff{beyond})", fontsize=9)
    axes.legend(fontsize=6.5, ncol=2, loc="upper left", markerscale=1.2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


#: A PTC "covers the range" when its brightest kept pair reaches this fraction of saturation (or the turnoff).
PTC_COVERAGE = 0.5


def _ptc_bias(repo: Repository, flats: list[Frame], biases: list[Frame]) -> tuple[dict[str, Array], str]:
    """The bias to subtract from the flats beyond their overscan: the biases' mean, a master, or none needed."""
    if biases:
        planes = {p.name: np.mean([corrected_plane(b, b.plane(p.name), {}) for b in biases], axis=0).astype(np.float32)
                  for p in flats[0].planes}  # fmt: skip
        return planes, f"the mean of {len(biases)} bias frames"
    if all(p.overscan is not None for p in flats[0].planes):
        return {}, "the overscan"
    try:
        lookup = repo.find("bias", flats[0].signature, float(np.mean([f.mjd for f in flats])))
    except RepositoryError:
        raise PipelineError(
            f"{flats[0].path}: no overscan, and no bias frames or master bias of its signature: the bias level "
            "cannot be removed (give bias frames with the flats, or build a master bias first)"
        ) from None
    return read_master(repo, lookup.product), f"master bias {lookup.product.id} ({lookup.note})"


def selected_flats(registry: str, select: dict[str, Any]) -> list[str]:
    """The flats of the acquired-images registry a PTC request names, in sequence order.

    By program, reason, filter, grating, group ids and exposure times, each only if given.
    """
    where = {"imgtype": "FLAT"} | {k: select[k] for k in ("program", "reason", "filter", "grating") if select.get(k)}
    times = {round(float(t), 3) for t in select.get("exptimes", [])}
    groups = set(select.get("groupids", []))
    return [i.path for i in AcquiredImages(registry).images(**where)
            if (not times or round(i.exptime, 3) in times) and (not groups or i.groupid in groups)]  # fmt: skip


def run_ptc(repo: Repository, config: dict[str, Any], progress: Progress = _quiet) -> dict[str, Any]:
    """Every consecutive pair of flats of equal exposure time -> gain, read noise, a00, turnoff per amplifier.

    Biases (among the inputs or in `bias`) are used as bias and to measure the read noise, never
    as points. A fit that cannot be trusted is a PipelineError with its reason (`ptc.PtcError`).
    """
    inputs = config["inputs"] if "inputs" in config else selected_flats(config["registry"], config["select"])
    if not inputs:
        raise PipelineError(f"no flats in the acquired-images registry match {json.dumps(config['select'])}")
    frames = load_frames([*inputs, *config.get("bias", [])], imgtype=None)
    others = sorted({f.imgtype for f in frames} - {"FLAT", "BIAS"})
    if others:
        raise PipelineError(f"a PTC is made of flats and biases, not {', '.join(o.lower() for o in others)} frames")
    flats = sorted((f for f in frames if f.imgtype == "FLAT"), key=lambda f: f.mjd)
    biases = [f for f in frames if f.imgtype == "BIAS"]
    if not flats:
        raise PipelineError(f"a PTC needs pairs of flats: none among {len(frames)} inputs")
    filters = sorted({f.filter for f in flats})
    if len(filters) > 1:
        raise PipelineError(f"one filter per PTC, these flats have {', '.join(filters)} (obsq reduce ptc groups them)")
    bias, bias_source = _ptc_bias(repo, flats, biases)
    read_noise = {amp: sigma for amp, (sigma, _) in measured_noise(biases, {}).items()} if len(biases) >= 2 else {}
    results: dict[str, ptc_core.PtcResult] = {}
    coverage: dict[str, float] = {}
    for index, plane in enumerate(flats[0].planes):
        masters = {"bias": {plane.name: bias[plane.name]}} if bias else {}
        exposures = [(f.exptime, corrected_plane(f, f.plane(plane.name), masters)) for f in flats]
        points = [ptc_core.pair_point(a, b, t) for t, a, b in ptc_core.pair_up(exposures)]
        try:
            fit = ptc_core.fit_ptc(points, read_noise_adu=read_noise.get(plane.name))
        except ptc_core.PtcError as exc:
            raise PipelineError(f"no PTC for amplifier {plane.name} ({len(points)} pairs of {len(flats)} flats): "
                                f"{exc}") from None  # fmt: skip
        results[plane.name] = fit
        if plane.saturation is not None:
            raw, corrected = flats[0].read(plane)[plane.data], exposures[0][1]  # NaN/Inf pixels (masked) left out
            level = float(np.median(raw[np.isfinite(raw)])) - float(np.median(corrected[np.isfinite(corrected)]))
            coverage[plane.name] = fit.turnoff / max(plane.saturation - level, 1.0)
        progress("ptc", index + 1, len(flats[0].planes))
    first = flats[0]
    reached = {name: any(not k and p.mean > r.turnoff for p, k in zip(r.points, r.kept, strict=True))
               for name, r in results.items()}  # fmt: skip
    covered = all(reached[name] or coverage.get(name, 0.0) >= PTC_COVERAGE for name in results)
    amps: dict[str, dict[str, Any]] = {
        name: {"gain": r.gain, "noise_e": r.noise_e, "a00": r.a00, "turnoff_adu": r.turnoff,
               "n_pairs": len(r.points), "n_kept": sum(r.kept), "coverage": coverage.get(name),
               "turnoff_reached": reached[name],
               "read_noise_from": "bias pairs" if name in read_noise else "the fit",
               "nominal_gain": first.plane(name).gain, "nominal_noise_e": first.plane(name).read_noise_e,
               "points": [[p.exptime_s, p.mean, p.variance, k] for p, k in zip(r.points, r.kept, strict=True)]}
        for name, r in results.items()
    }  # fmt: skip
    png = _ptc_plot(results)

    def write(path: Path) -> None:
        path.write_bytes(png)

    ptc_config = {"fit": "EXPAPPROXIMATION", "bias": bias_source}
    ptc_inputs = [str(f.path) for f in [*flats, *biases]]
    made = [p for p in repo.built_from("ptc", first.signature, first.filter, ptc_inputs) if p.config == ptc_config]
    product = made[-1] if config.get("rerun") and made else repo.add_product(
        type_="ptc", signature=first.signature, filter_=first.filter, inputs=ptc_inputs,
        mjds=[f.mjd for f in flats], config=ptc_config, software=SOFTWARE,
        stats={"amps": amps, "covers_range": covered}, collection=config.get("collection", "u/obsq/reduce"),
        suffix="png", write=write, force=bool(config.get("force", False)),
    )  # fmt: skip
    top = max(coverage.values(), default=0.0)
    return {"product": product.id, "type": "ptc", "plot": str(repo.path_of(product)), "n_flats": len(flats),
            "n_biases": len(biases), "bias": bias_source, "covers_range": covered,
            "range": "to the turnoff" if covered else f"below the turnoff: the brightest pairs reach {top:.0%} of "
            "saturation (misaligned or too faint a light?)",
            "amps": {k: {f: v for f, v in a.items() if f != "points"} for k, a in amps.items()}}  # fmt: skip


# --- the repository ---------------------------------------------------------------------------


def certify(repo: Repository, config: dict[str, Any]) -> dict[str, Any]:
    product_id, begin, end = int(config["product"]), float(config["begin_mjd"]), float(config["end_mjd"])
    if config.get("rerun") and (begin, end) in repo.product(product_id).certified:  # the earlier run had done it
        return {"product": product_id, "actions": [f"product {product_id} certified for [{begin}, {end}) already"]}
    actions = repo.certify(int(config["product"]), float(config["begin_mjd"]), float(config["end_mjd"]),
                           force=bool(config.get("force", False)))  # fmt: skip
    return {"product": int(config["product"]), "actions": actions}
