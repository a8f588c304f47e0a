"""`obsq reduce lights`: every light of the inputs calibrated with the repository's masters, and an account."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from obsq.csc.clock import perf_counter, utc_now_unix
from obsq.csc.ocps.lights import LightResult, calibrate_light
from obsq.csc.ocps.repository import Repository
from obsq.csc.reduction.frames import FrameError, OtherFormatError, ProductError, open_frame
from obsq.csc.reduction.survey import IMAGE_SUFFIXES


@dataclass(frozen=True)
class LightsOptions:
    """`obsq reduce lights INPUTS... --repo DIR [--out DIR]`."""

    inputs: Sequence[str]
    repo: Path
    out: Path | None = None
    cosmetic: bool = False
    force: bool = False
    json: bool = False


def inputs_of(items: Sequence[str]) -> list[tuple[Path, Path | None]]:
    """Each file once, with its path relative to the folder it was found in (None: named itself)."""
    found: dict[Path, tuple[Path, Path | None]] = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                    found.setdefault(file.resolve(), (file, file.relative_to(path)))
        elif path.exists():
            found.setdefault(path.resolve(), (path, None))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return list(found.values())


def run_lights(options: LightsOptions) -> int:
    """Exit 0 if every light was calibrated (or was before), 1 if one was not or a file was unusable, 2 if refused."""
    if not (options.repo / "registry.sqlite3").exists():
        print(f"obsq reduce lights: no calibration repository at {options.repo} (no registry.sqlite3): build its "
              "masters first (obsq reduce bias|dark|flat … --repo DIR); nothing was calibrated",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        files = inputs_of(options.inputs)
    except FileNotFoundError as exc:
        print(f"obsq reduce lights: {exc}; nothing was calibrated", file=sys.stderr)
        return 2
    repo = Repository(options.repo, now=utc_now_unix)
    out = options.out or options.repo / "calibrated"
    results: list[LightResult] = []
    others: list[tuple[Path, str, bool]] = []  # (file, why it is not a light, unusable)
    for path, relative in files:
        try:
            frame = open_frame(path, now=perf_counter)
        except (ProductError, OtherFormatError) as exc:
            others.append((path, str(exc).removeprefix(f"{path}: "), False))
            continue
        except FrameError as exc:
            others.append((path, "unusable: " + str(exc).removeprefix(f"{path}: "), True))
            continue
        if frame.imgtype != "OBJECT":
            others.append((path, f"a {frame.imgtype.lower()}, not a light", False))
            continue
        try:
            result = calibrate_light(repo, frame, out, relative=relative, cosmetic=options.cosmetic,
                                     force=options.force)  # fmt: skip
        except (FrameError, OSError, ValueError) as exc:  # the file went bad while read, or a master is unreadable
            result = LightResult(path, status="not calibrated", reason=str(exc).removeprefix(f"{path}: "))
        results.append(result)
    if options.json:
        for result in results:
            print(json.dumps(result.row()))
        for path, reason, unusable in others:
            print(json.dumps({"file": str(path), "status": "not a light", "reason": reason, "unusable": unusable}))
    else:
        print(lights_report(results, others))
    failed = any(r.status == "not calibrated" for r in results) or any(u for _, _, u in others)
    return 1 if failed or not results else 0


def lights_report(results: list[LightResult], others: list[tuple[Path, str, bool]]) -> str:
    """One line per light (outcome, masters, output or why not), then the other files by reason."""
    lines = []
    for r in results:
        masters = "; ".join(f"{t} {m}" for t, m in r.masters.items()) or "no masters"
        if r.status == "not calibrated":
            lines.append(f"{r.path.name}: NOT calibrated: {r.reason} [{masters}]")
            continue
        what = ", ".join(r.steps) if r.status == "calibrated" else r.reason
        lines.append(f"{r.path.name}: {r.status} -> {r.output} ({what}) [{masters}]")
        lines += [f"    note: {note}" for note in r.notes]
    done = sum(r.status in ("calibrated", "exists") for r in results)
    lines.append(f"lights: {len(results)}, {done} calibrated (or before), {len(results) - done} not; "
                 f"other files: {len(others)}")  # fmt: skip
    by_reason: dict[str, list[str]] = {}
    for path, reason, _ in others:
        by_reason.setdefault(reason, []).append(path.name)
    for reason, names in by_reason.items():
        shown = ", ".join(names[:6]) + (f", … ({len(names)} files)" if len(names) > 6 else "")
        lines.append(f"  not a light: {shown}: {reason}")
    if not results:
        lines.append("no light frames among the inputs (IMAGETYP Light/Object/Science): nothing was calibrated")
    return "\n".join(lines)
