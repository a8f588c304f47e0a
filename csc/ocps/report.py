"""The calibration report of a run, written by the reduction service: results as JSON and one HTML page.

`cpReport` (a job like any other) collects what a run produced — the images of its scripts'
group ids in the acquired-images registry, the masters, checks and jobs since it began, the
latest PTC among them — writes `report.html` (with a preview of every master, embedded as data:
URLs so the file can be mailed or archived alone) and `results.json` under `repo/reports/JOB/`,
and answers the numbers. Clients (`obsq weekly`, standalone or against a running site) ask for
it over the bus; they never read the service's registries or files themselves.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.clock import TAI_MINUS_UTC_S
from obsq.csc.database import exists
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.ocps.pipelines import summarise
from obsq.csc.ocps.repository import Repository, certification_text, iso_stamp
from obsq.csc.reduction.verify import HEADER_CHECKS

#: The PTC gain must be this close to the camera's nominal (the simulator's truth) per amplifier.
PTC_GAIN_TOLERANCE = 0.02


#: What each verification check tests, for the report's reader (cp_verify's tests, DMTN-101).
CHECK_MEANINGS = {
    "MEAN": "the corrected frame's mean is not within its clipped sigma of zero: bias or dark level left over",
    "NOISE": "the corrected frame is noisier than its noise reference by more than 5 %: extra noise or structure",
    "AMP_SPREAD": "the amplifiers' means differ by more than 5 %: a gain or illumination problem",
    "FLAT_LEVEL": "the flats are far too faint: the dome and the white-light screen are misaligned",
    "COUNT": "the images received differ from those planned: exposures missing or extra",
    "READ_NOISE": "the header's read noise is more than 10 % from the measured one",
    "GAIN": "the header's gain is more than 10 % from the measured one",
}

#: What the LATISS procedure says to do when the flats show the dome and the white light misaligned.
RECOVERY = [
    "home the dome: obsq queue add auxtel/atdome/home_dome.py",
    "run the setup again, whose prepare_for/flat moves the dome to the screen: obsq queue add-block BLOCK-309",
    "take the calibrations again: obsq queue add-block BLOCK-295",
]


#: Failed checks sent back in a job's result (the report lists them all).
FAILURES_RETURNED = 200


def image_summary(registry: str, groupids: list[str] | None = None) -> list[dict[str, Any]]:
    """Images per type, filter, grating and exposure time in the registry (of these group ids, if given)."""
    if not exists(registry):
        return []
    images = AcquiredImages(registry).images()
    wanted = None if groupids is None else set(groupids)
    counts = Counter((i.imgtype, i.filter, i.grating, i.exptime) for i in images
                     if wanted is None or i.groupid in wanted)  # fmt: skip
    return [
        {"imgtype": t, "filter": f, "grating": g, "exptime": e, "count": n}
        for (t, f, g, e), n in sorted(counts.items())
    ]


def collect(repo: Repository, jobs: JobStore, since_unix: float = 0.0) -> dict[str, Any]:
    """Everything the repository and the job table say about a run that began at `since_unix` (UTC)."""
    stamp = iso_stamp(since_unix) if since_unix else ""
    checks = repo.checks(since=stamp)
    kinds = sorted({row["kind"] for row in checks})
    verification = {kind: summarise([row for row in checks if row["kind"] == kind]) for kind in kinds}
    fields = ("kind", "name", "amp", "exposure", "value", "limit_value", "detail")
    failures = [{k: row[k] for k in fields} for row in checks if not row["passed"] and row["name"] not in HEADER_CHECKS]
    disagreements = [
        {k: row[k] for k in fields} for row in checks if not row["passed"] and row["name"] in HEADER_CHECKS
    ]
    superseded = repo.superseded()
    products = [p for p in repo.products() if p.created >= stamp]
    masters = [
        {"id": p.id, "type": p.type, "filter": p.filter, "version": p.version, "n_inputs": len(p.inputs),
         "verified": p.verified, "certified": p.certified, "certification": certification_text(p, superseded),
         "path": str(repo.path_of(p)), "amps": p.stats.get("amps", {}) if p.type != "ptc" else {}}
        for p in products if p.type != "ptc"
    ]  # fmt: skip
    ptc: dict[str, Any] | None = None
    ptcs = [p for p in products if p.type == "ptc"]
    if ptcs:
        latest = ptcs[-1]
        amps: dict[str, dict[str, Any]] = {}
        for name, amp in latest.stats["amps"].items():
            nominal = amp.get("nominal_gain")
            ratio = amp["gain"] / nominal if nominal else None
            amps[name] = {k: v for k, v in amp.items() if k != "points"} | {
                "gain_ratio": ratio,
                "gain_ok": ratio is not None and abs(ratio - 1) <= PTC_GAIN_TOLERANCE,
            }
        ptc = {"product": latest.id, "plot": str(repo.path_of(latest)), "amps": amps, "n_inputs": len(latest.inputs),
               "covers_range": bool(latest.stats.get("covers_range", True))}  # fmt: skip
    run_jobs = [j for j in jobs.jobs() if j.created >= since_unix + TAI_MINUS_UTC_S and j.pipeline != "cpReport"]
    failed_jobs = [{"id": j.id, "pipeline": j.pipeline, "result": j.result} for j in run_jobs if j.state == "FAILED"]
    ptc_ok = ptc is None or (ptc["covers_range"] and all(a["gain_ok"] for a in ptc["amps"].values()))
    passed = not failures and not failed_jobs and ptc_ok
    misaligned = any(f["name"] == "FLAT_LEVEL" for f in failures) or (ptc is not None and not ptc["covers_range"])
    return {
        "passed": passed,
        "recovery": RECOVERY if misaligned else [],
        "verification": verification,
        "failures": failures,
        "header_disagreements": disagreements,
        "masters": masters,
        "ptc": ptc,
        "jobs": {"total": len(run_jobs), "failed": failed_jobs},
    }


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _is_image(data: Any, *dims: int) -> bool:
    """Numbers with one of `dims` axes, each at least 2 long (tables, random groups and single rows are not)."""
    return (isinstance(data, np.ndarray) and data.dtype.kind in "iuf" and data.ndim in dims
            and min(data.shape) >= 2)  # fmt: skip


_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


def _section(header: Any, key: str, shape: tuple[int, ...]) -> tuple[slice, slice] | None:
    """A FITS section keyword (`[x1:x2,y1:y2]`, 1-based, inclusive) as array slices; None if absent or odd."""
    match = _SECTION.match(str(header.get(key, "")).replace(" ", ""))
    if match is None:
        return None
    x1, x2, y1, y2 = (int(v) for v in match.groups())
    rows, cols = slice(min(y1, y2) - 1, max(y1, y2)), slice(min(x1, x2) - 1, max(x1, x2))
    if rows.stop > shape[0] or cols.stop > shape[1]:
        return None
    return rows, cols


def _trimmed(hdu: Any) -> np.ndarray:
    """An amplifier's image as an operator wants to see it: its data section, less its overscan's median."""
    data = np.asarray(hdu.data, np.float32)
    where = _section(hdu.header, "DATASEC", data.shape)
    bias = _section(hdu.header, "BIASSEC", data.shape)
    level = float(np.median(data[bias])) if bias is not None else 0.0
    return (data[where] if where is not None else data) - level


def preview(path: Path, unit: str = "") -> bytes:
    """A small PNG of a frame or master: its amplifiers tiled in two rows, with a colour bar and its scale.

    A raw amplifier is shown trimmed to its DATASEC, less the median of its BIASSEC (no overscan).

    The scale is the 1st-99th percentile; `unit` labels it (else the file's BUNIT or, as the masters
    write it, UNITS; else "counts").
    Files whose image is in the primary HDU (most cameras' raws) are shown as they are, a cube by its
    first plane; a file with no image (tables, random groups) is a ValueError.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with fits.open(path, memmap=False) as hdul:
        planes = [_trimmed(h) for h in hdul[1:] if _is_image(getattr(h, "data", None), 2)]
        if not planes and _is_image(hdul[0].data, 2, 3):  # a cube shows its first plane
            planes = [np.asarray(hdul[0].data, np.float32).reshape(-1, *np.shape(hdul[0].data)[-2:])[0]]
        header = hdul[0].header
        unit = unit or str(header.get("BUNIT") or header.get("UNITS") or "") or "counts"
    if not planes:
        raise ValueError(f"{path.name}: no image data")
    rows = 2 if len(planes) > 1 else 1
    per_row = (len(planes) + rows - 1) // rows
    tiles = [np.hstack(planes[r * per_row : (r + 1) * per_row]) for r in range(rows)]
    width = max(t.shape[1] for t in tiles)
    mosaic = np.vstack([np.pad(t, ((0, 0), (0, width - t.shape[1]))) for t in tiles])
    step = max(1, max(mosaic.shape) // 400)
    mosaic = mosaic[::step, ::step]
    finite = mosaic[np.isfinite(mosaic)]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    figure, axes = plt.subplots(figsize=(3.8, 3.2 * mosaic.shape[0] / mosaic.shape[1] + 0.5), dpi=72)
    shown = axes.imshow(mosaic, origin="lower", cmap="gray", vmin=low, vmax=high if high > low else low + 1)
    axes.set_axis_off()
    bar = figure.colorbar(shown, ax=axes, fraction=0.05, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(f"{unit} (1st–99th percentile)", fontsize=7)
    figure.tight_layout(pad=0.2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _mark(ok: bool) -> str:
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def render_html(results: dict[str, Any], summary: dict[str, Any]) -> str:
    """The report page; `summary` is the run's summary (blocks, scripts, images)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>obsq weekly calibration report</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
        ".pass{color:#080;font-weight:600}.fail{color:#b00;font-weight:600}figure{display:inline-block;"
        "margin:4px;text-align:center;font-size:12px}</style></head><body>",
        f"<h1>Weekly calibration report — {_mark(results['passed'])}</h1>",
        f"<p>Blocks {e(', '.join(summary.get('blocks', [])))}; outcome: {e(summary.get('outcome', ''))}; "
        f"{sum(i['count'] for i in summary.get('images', []))} images; wall time "
        f"{summary.get('wall_time_s', 0):.1f} s.</p>",
        "<h2>Verification</h2>",
    ]
    rows = [
        [e(kind), e(name), f"{c['passed']}/{c['run']}", _mark(c["passed"] == c["run"])]
        for kind, names in sorted(results["verification"].items())
        for name, c in sorted(names.items())
    ]
    parts.append(_table(["kind", "check", "passed", ""], rows, "verification"))
    if results["failures"]:
        parts.append("<h3>Failed checks</h3>")
        parts += _failed_checks(results["failures"])
    if results.get("header_disagreements"):
        parts.append("<h3>Header values the measurement disagrees with (reported; no master failed for them)</h3>")
        parts += _failed_checks(results["header_disagreements"])
    if results["jobs"]["failed"]:
        parts.append("<h3>Failed reduction jobs</h3>")
        parts.append(_table(["job", "pipeline", "reason"], [[e(j["id"]), e(j["pipeline"]), e(j["result"])]
                                                            for j in results["jobs"]["failed"]]))  # fmt: skip
    parts.append("<h2>Masters</h2>")
    rows = [[str(m["id"]), e(m["type"]), e(m["filter"] or "-"), str(m["version"]), str(m["n_inputs"]), e(m["verified"]),
             e(m.get("certification") or "not certified")]
            for m in results["masters"]]  # fmt: skip
    parts.append(_table(["id", "type", "filter", "version", "inputs", "verification", "certified for (UTC)"], rows))
    parts.append("<p class='note'>inputs: the frames a master is built from. Rubin's make_latiss_calibrations "
                 "takes <code>n_discard_&lt;type&gt;</code> more frames first and leaves them out (the detector "
                 "settles): a set of 4 biases taken builds its master from 3.</p>")  # fmt: skip
    for m in results["masters"]:
        path = Path(m["path"])
        if path.exists():
            caption = f"{m['type']} {m['filter']} v{m['version']} (id {m['id']})"
            parts.append(f"<figure><img class='preview' alt='{e(caption)}' src='{_png_uri(preview(path))}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")  # fmt: skip
    parts.append("<h2>Photon transfer curve</h2>")
    ptc = results["ptc"]
    if ptc is None:
        parts.append("<p>No PTC was run.</p>")
    else:
        rows = [[e(name), f"{a['gain']:.4f}", f"{a['nominal_gain'] or float('nan'):.4f}",
                 f"{(a['gain_ratio'] or float('nan')) - 1:+.2%}", f"{a['noise_e']:.2f}", f"{a['a00']:.2e}",
                 f"{a['turnoff_adu']:.0f}", f"{a['n_kept']}/{a['n_pairs']}", _mark(a["gain_ok"])]
                for name, a in sorted(ptc["amps"].items())]  # fmt: skip
        parts.append(_table(["amp", "gain e-/ADU", "nominal", "difference", "read noise e-", "a00", "turnoff ADU",
                             "pairs kept", "gain within 2 %"], rows, "ptc"))  # fmt: skip
        parts.append("<p class='note'>a00: the brighter-fatter coefficient of Astier et al. (2019), in 1/e⁻, the "
                     "curvature of the variance against the mean. A real CCD has about −1e−6 (the variance grows "
                     "slower than the mean as charge spreads); a detector without brighter-fatter, as this "
                     "simulator's, gives a value indistinguishable from 0.</p>")  # fmt: skip
        if not ptc["covers_range"]:
            parts.append("<p class='fail'>The PTC flats stop below the turnoff: they never reached the upper half of "
                         "the detector's range, so the curve is not a PASS whatever its gain.</p>")  # fmt: skip
        plot = Path(ptc["plot"])
        if plot.exists():
            parts.append(f"<p><img id='ptc-plot' alt='PTC' src='{_png_uri(plot.read_bytes())}'></p>")
    parts += _run_tables(summary)
    if results.get("recovery"):
        parts.append("<h2 id='recovery'>Recovery</h2><p>The flats show the dome and the white light misaligned. "
                     "The procedure's recovery:</p><ol>")  # fmt: skip
        parts += [f"<li>{e(step)}</li>" for step in results["recovery"]]
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _failed_checks(failures: list[dict[str, Any]]) -> list[str]:
    """The failed checks grouped by kind and check: how many, what the check means, then each failure."""
    e = html.escape
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for failure in failures:
        groups.setdefault((failure["kind"], failure["name"]), []).append(failure)
    parts = []
    for (kind, name), rows in sorted(groups.items()):
        meaning = CHECK_MEANINGS.get(name, "see the check's detail")
        parts.append(f"<details class='failed-group'><summary><b>{e(kind)} {e(name)}</b>: {len(rows)} failed — "
                     f"{e(meaning)}</summary>")  # fmt: skip
        table = [[e(f["amp"]), e(f["exposure"]), f"{f['value']:.4g}", f"{f['limit_value']:.4g}", e(f["detail"])]
                 for f in rows[:50]]  # fmt: skip
        parts.append(_table(["amp / set", "exposure", "value", "limit", "detail"], table, "failures"))
        parts.append("</details>")
    return parts


def _run_tables(summary: dict[str, Any]) -> list[str]:
    """The run's scripts and the images it took, as tables."""
    e = html.escape
    parts = []
    if summary.get("scripts"):
        parts.append("<h2>Scripts</h2>")
        rows = [[str(s["index"]), e(s["block"]), e(s["path"]), _outcome(s["state"]), e(s["reason"])]
                for s in summary["scripts"]]  # fmt: skip
        parts.append(_table(["index", "block", "script", "outcome", "reason"], rows, "scripts"))
    if summary.get("images"):
        parts.append("<h2>Images</h2>")
        rows = [[e(i["imgtype"]), e(i["filter"]), e(i["grating"]), f"{i['exptime']:g}", str(i["count"])]
                for i in summary["images"]]  # fmt: skip
        rows.append(["<b>total</b>", "", "", "", f"<b>{sum(i['count'] for i in summary['images'])}</b>"])
        parts.append(_table(["type", "filter", "grating", "exposure (s)", "images"], rows, "images"))
    return parts


def _outcome(state: str) -> str:
    return f"<span class='{'pass' if state == 'DONE' else 'fail'}'>{html.escape(state)}</span>"


def write_report(folder: Path, results: dict[str, Any], summary: dict[str, Any]) -> Path:
    """`folder/report.html` and `folder/results.json`; returns the HTML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    page = folder / "report.html"
    page.write_text(render_html(results, summary))
    return page


def build_report(repo: Repository, config: dict[str, Any], job: str) -> dict[str, Any]:
    """The `cpReport` pipeline: collect the run, write its report folder, answer the numbers and the page's path.

    `config`: `since` (UTC unix s when the run began), `groupids` (its scripts' group ids: its
    images), `summary` (the run as the client saw it: blocks, scripts, outcome, wall time), and
    `registry`/`jobs` (set by the service: its own acquired-images registry and job table).
    """
    results = collect(repo, JobStore(config["jobs"]), config.get("since", 0.0))
    images = image_summary(config["registry"], config.get("groupids"))
    summary = {**config.get("summary", {}), "images": images}
    page = write_report(repo.root / "reports" / job, results, summary)
    failures = results["failures"]
    returned = {**results, "failures": failures[:FAILURES_RETURNED], "failures_total": len(failures)}
    return {"images": images, "calibration": returned, "report": str(page)}
