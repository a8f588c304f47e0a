"""What a request to reduce a set of files will do, decided from headers alone, before any pixel is read.

`survey` opens every file's headers and accounts for each one: used in a named group, or
skipped with the reason (unreadable, a product rather than a raw, another image type, too few
frames in its group, …) and a hint where the user probably meant something else (a 'Light
Frame' in a folder called FLAT). Files named one by one are a claim: one of another type, a
product, an unreadable file, or a second image size among them refuses the whole request by
name. Files found in folders are sorted into groups (image type, signature, filter for flats, a
time window anchored on the first frame); each group is built or refused on its own.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from obsq.csc.reduction.formats import OTHER_IMAGE_SUFFIXES, READABLE_SUFFIXES
from obsq.csc.reduction.frames import (
    Frame,
    FrameError,
    OtherFormatError,
    PlaneScan,
    ProductError,
    ReadBudget,
    describe_difference,
    open_frame,
    scan_nonfinite,
    signature_key,
)

#: What a folder's survey looks at: the files obsq reads, and other image files (named: obsq does not read them).
IMAGE_SUFFIXES = (*READABLE_SUFFIXES, *OTHER_IMAGE_SUFFIXES)
#: Folder names that say what a file probably is (a hint only, never applied).
FOLDER_WORDS = {
    "BIAS": ("bias", "biases", "zero", "zeros", "offset", "offsets"),
    "DARK": ("dark", "darks", "darkframes"),
    "FLAT": ("flat", "flats", "flatfield", "flatfields", "skyflat", "skyflats", "domeflat", "domeflats", "twilight"),
    "OBJECT": ("light", "lights", "science", "object", "objects"),
}
DEFAULT_MIN_FRAMES = 3
#: A frame with more than this fraction of an amplifier's pixels NaN or infinite is not used (fewer are masked).
MAX_NONFINITE_FRACTION = 0.5
#: How the account of a file that cannot be used (not merely of another kind) begins.
UNUSABLE = "unusable: "


class SurveyError(ValueError):
    """The request as a whole is refused (files named one by one that do not go together)."""


@dataclass(frozen=True)
class Account:
    """One file: the group it is used in, or why it is skipped (and a hint)."""

    path: str
    group: str = ""
    reason: str = ""
    hint: str = ""
    #: pixels NaN or infinite in a used file, masked by the combine
    masked: int = 0

    @property
    def used(self) -> bool:
        return bool(self.group)

    @property
    def unusable(self) -> bool:
        """Refused for what the file is (unreadable, bad pixels, too many HDUs, changed), not for its kind."""
        return self.reason.startswith(UNUSABLE)


@dataclass
class Group:
    """Frames to become one product; `refusal` says why it will not be built (no pixels needed)."""

    name: str
    kind: str
    frames: list[Frame]
    label: str
    refusal: str = ""
    bias: list[Frame] = field(default_factory=list)  # for a PTC: the biases of its signature


@dataclass
class Survey:
    """Every file accounted for, and the groups to build."""

    groups: list[Group]
    accounts: list[Account]


def folder_hint(path: Path) -> str | None:
    """The image type a file's folders suggest (BIAS/, Darks/, FLAT/, flats_r/ …), or None."""
    for folder in reversed(path.parent.parts[-3:]):
        words = re.split(r"[^a-z]+", folder.lower())
        for kind, names in FOLDER_WORDS.items():
            if any(word in names for word in words):
                return kind
    return None


def expand(items: Sequence[str]) -> list[tuple[Path, bool]]:
    """Each file once, with whether it was named (True) or only found in a folder; folders sorted, recursively."""
    found: dict[Path, tuple[Path, bool]] = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = [(p, False) for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        elif path.exists():
            files = [(path, True)]
        else:
            raise SurveyError(f"{item}: no such file or folder")
        for file, named in files:  # a file given twice (by name and in its folder) is one input
            key = file.resolve()
            found[key] = (found[key][0], found[key][1] or named) if key in found else (file, named)
    return list(found.values())


def _label(frames: list[Frame], kind: str) -> str:
    """A group as a person reads it: camera, size, binning, filter, measured temperature, gain, first day."""
    frame = frames[0]
    sig = frame.signature
    size = (
        sig["layout"].split(";")[0].split(":")[-1]
        if ";" not in sig["layout"]
        else f"{sig['layout'].count(';') + 1} amps"
    )
    parts = [sig["detector"], size, f"bin {sig['binning']}"]
    if kind in ("FLAT", "PTC"):
        parts.append(frame.filter)
    measured = [f.temperature for f in frames if f.temperature is not None]
    if measured:  # as measured (the band is what groups them)
        parts.append(f"{sum(measured) / len(measured):.1f} C")
    elif "temperature_band" in sig:
        parts.append(f"{sig['temperature_band']:g} C")
    if "gain" in sig:
        parts.append(f"gain {sig['gain']:g}")
    day = datetime.date(1858, 11, 17) + datetime.timedelta(days=int(frame.mjd))
    return " ".join([*parts, day.isoformat()])


def _windows(frames: list[Frame], window_hours: float) -> list[list[Frame]]:
    rest, windows = sorted(frames, key=lambda f: f.mjd), []
    while rest:
        anchor = rest[0].mjd
        window = [f for f in rest if f.mjd - anchor < window_hours / 24.0]
        windows.append(window)
        rest = rest[len(window) :]
    return windows


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _hint(frame_kind: str | None, path: Path, wanted: str) -> str:
    """A folder's suggestion, where the header does not say otherwise.

    Only for no type or 'Light' (as some software types flats): a header that names another
    calibration type is never contradicted.
    """
    folder = folder_hint(path)
    if folder == wanted and frame_kind in (None, "OBJECT"):
        return f"its folder suggests a {wanted.lower()}: if it is one, give --type {wanted.lower()} with it"
    return ""


def survey(
    items: Sequence[str],
    kind: str,
    *,
    type_override: str | None = None,
    window_hours: float = 12.0,
    min_frames: int = DEFAULT_MIN_FRAMES,
    now: Callable[[], float] | None = None,
) -> Survey:
    """Account for every file and group what `kind` (bias|dark|flat|ptc) will use; SurveyError refuses it all.

    `now`, a real-time clock, bounds the time each file's headers may take (`open_frame`).
    """
    wanted = {"bias": "BIAS", "dark": "DARK", "flat": "FLAT", "ptc": "FLAT"}[kind]
    accounts: dict[Path, Account] = {}
    frames: list[Frame] = []
    nonfinite: dict[Path, int] = {}
    named_refusals: list[str] = []
    listing = expand(items)
    named_paths = {path for path, named in listing if named}
    named_other_type: list[str] = []
    for path, named in listing:
        frame, refusal, account = _examine(path, kind, wanted, type_override, now)
        if frame is None:
            accounts[path] = account
            if named and account.reason.endswith(f", not a {kind}"):
                named_other_type.append(refusal)  # a glob takes in what a folder would: said, not refused
            elif named:
                named_refusals.append(refusal)
            continue
        if account.masked:
            nonfinite[frame.path] = account.masked
        frames.append(frame)
    if named_other_type and not any(f.path in named_paths for f in frames):
        named_refusals = named_other_type  # none of the files named is of the kind asked for: the request is wrong
    if named_refusals:
        more = f" (and {len(named_refusals) - 3} more)" if len(named_refusals) > 3 else ""
        raise SurveyError("; ".join(named_refusals[:3]) + more)
    _refuse_mixed_named([f for f in frames if f.path in named_paths], kind)
    groups = _group(frames, kind, wanted, window_hours, min_frames)
    for group in groups:
        for frame in [*group.frames, *group.bias]:
            accounts[frame.path] = Account(str(frame.path), group=group.name, masked=nonfinite.get(frame.path, 0))
        if group.refusal:
            for frame in group.frames:
                accounts[frame.path] = Account(str(frame.path), group=group.name, reason=group.refusal)
    for frame in frames:  # a PTC's biases whose signature has no flats
        accounts.setdefault(frame.path, Account(str(frame.path), reason="a bias with no flats of its signature"))
    ordered = [accounts[path] for path, _ in listing]
    return Survey(groups, ordered)


def _examine(
    path: Path, kind: str, wanted: str, type_override: str | None, now: Callable[[], float] | None
) -> tuple[Frame | None, str, Account]:
    """One file: (the frame, "", its account with the pixels masked) if usable, else (None, refusal, account).

    One real-time budget (MAX_READ_S) covers the file's headers and the scan of its pixels.
    """
    usable = {"BIAS", "FLAT"} if kind == "ptc" else {wanted}
    budget = ReadBudget(path, now)
    try:
        frame = open_frame(path, imgtype=type_override, budget=budget)
        if frame.imgtype not in usable:
            hint = _hint(frame.imgtype, path, wanted)
            account = Account(str(path), reason=f"{_a(frame.imgtype.lower())}, not a {kind}", hint=hint)
            return None, f"{path}: is a {frame.imgtype}, not a {wanted}", account
        scans = scan_nonfinite(frame, budget)  # reads only planes that can hold NaN (floating point)
    except (ProductError, OtherFormatError) as exc:
        return None, str(exc), Account(str(path), reason=str(exc).removeprefix(f"{path}: "))
    except FrameError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        hint = _hint(None, path, wanted) if "no image type" in reason else ""
        return None, str(exc), Account(str(path), reason=f"{UNUSABLE}{reason}", hint=hint)
    except Exception as exc:  # whatever a file holds, it is named and the others go on
        reason = f"cannot be read as a frame ({type(exc).__name__}: {str(exc)[:200]})"
        return None, f"{path}: {reason}", Account(str(path), reason=f"{UNUSABLE}{reason}")
    reason = nonfinite_refusal(scans)
    if reason:
        return None, f"{path}: {reason}", Account(str(path), reason=f"{UNUSABLE}{reason}")
    return frame, "", Account(str(path), masked=sum(scan.raw_bad for scan in scans))


def nonfinite_refusal(scans: list[PlaneScan]) -> str:
    """Why a frame's NaN and infinite pixels make it unusable ("" if they are only masked).

    Rule: in no amplifier's data section more than MAX_NONFINITE_FRACTION of the pixels, and an
    overscan with at least one finite pixel (its median is the amplifier's offset).
    """
    for scan in scans:
        amp = f" of amplifier {scan.name}" if len(scans) > 1 else ""
        if scan.data_bad > MAX_NONFINITE_FRACTION * scan.data_pixels:
            return (f"{scan.data_bad} of the {scan.data_pixels} pixels{amp} are NaN or infinite (rule: at most "
                    f"{MAX_NONFINITE_FRACTION:.0%} in each amplifier; fewer are masked)")  # fmt: skip
        if scan.overscan_pixels and scan.overscan_bad == scan.overscan_pixels:
            return (f"every one of the {scan.overscan_pixels} overscan pixels{amp} is NaN or infinite (rule: the "
                    "overscan needs finite pixels to give the offset)")  # fmt: skip
    return ""


def _refuse_mixed_named(frames: list[Frame], kind: str) -> None:
    """Files named one by one for one master must be one signature (and one filter for flats)."""
    if kind == "ptc" or len(frames) < 2:
        return
    first = frames[0]
    for frame in frames[1:]:
        if frame.signature != first.signature:
            raise SurveyError(
                f"{frame.path} and {first.path} cannot make one {kind}: "
                f"{describe_difference(frame.signature, first.signature)}"
            )
        if kind == "flat" and frame.filter != first.filter:
            raise SurveyError(f"{frame.path} ({frame.filter}) and {first.path} ({first.filter}): one filter per flat")


def _group(frames: list[Frame], kind: str, wanted: str, window_hours: float, min_frames: int) -> list[Group]:
    keyed: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    biases: dict[str, list[Frame]] = defaultdict(list)
    for frame in frames:
        sig = signature_key(frame.signature)
        if kind == "ptc" and frame.imgtype == "BIAS":
            biases[sig].append(frame)
        else:
            keyed[(sig, frame.filter if wanted == "FLAT" else "")].append(frame)
    groups: list[Group] = []
    counter: Counter[str] = Counter()
    for (sig, _), members in sorted(keyed.items(), key=lambda item: min(f.mjd for f in item[1])):
        windows = [members] if kind == "ptc" else _windows(members, window_hours)
        for window in windows:
            counter[kind] += 1
            group = Group(f"{kind}#{counter[kind]}", kind, window, _label(window, kind.upper()))
            if kind == "ptc":
                group.bias = biases.get(sig, [])
            elif len(window) < min_frames:
                group.refusal = f"{len(window)} frame{'s' * (len(window) != 1)}, fewer than the minimum {min_frames}"
                group.refusal += " (--min-frames)"
            groups.append(group)
    return groups
