"""`obsq calib` (the calibration repository) and `obsq reduce` (masters and PTC from any folder of FITS).

`obsq reduce` works offline, without a broker or the services: it surveys the inputs from their
headers (`obsq.csc.reduction.survey`: groups as filabres makes them, and an account of every
file), refuses what needs no pixels to refuse, then builds each group on its own with the same
pipelines OCPS runs (a progress bar on stderr), and ends with a table of the groups and the
account of the files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.clock import perf_counter, utc_now_unix
from obsq.csc.ocps import catalog, pipelines
from obsq.csc.ocps.repository import Repository, RepositoryError
from obsq.csc.reduction.frames import FrameError
from obsq.csc.reduction.survey import DEFAULT_MIN_FRAMES, Account, Group, SurveyError, survey


class ProgressBar:
    """One line on stderr, redrawn in place: `[#####.....]  50 % stage`."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(30 * done / total)
        line = f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * done // total:3d} % {stage[:40]:<40}"
        if line != self.last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self.last = line

    def close(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")
            self.last = ""


@dataclass(frozen=True)
class ReduceOptions:
    """`obsq reduce KIND INPUTS... --repo DIR`."""

    kind: str  # bias | dark | flat | ptc
    inputs: Sequence[str]
    repo: Path
    window_hours: float = 12.0
    method: str = "clipped_mean"
    iterations: int = 3
    type_override: str | None = None
    verify: bool = False
    force: bool = False
    progress: bool = False
    json: bool = False
    min_frames: int = DEFAULT_MIN_FRAMES


@dataclass
class Outcome:
    """What became of one group: built, exists (already built), refused (before any pixel) or failed."""

    group: Group
    status: str
    detail: str
    result: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("built", "exists")


def run_reduce(options: ReduceOptions) -> int:
    """Each group built or refused on its own, then a summary and an account of every file; 1 if any failed."""
    override = options.type_override.upper() if options.type_override else None
    try:
        plan = survey(options.inputs, options.kind, type_override=override, window_hours=options.window_hours,
                      min_frames=options.min_frames, now=perf_counter)  # fmt: skip
    except SurveyError as exc:
        print(f"obsq reduce: {exc}; nothing was built", file=sys.stderr)
        return 2
    repo = Repository(options.repo, now=utc_now_unix)
    outcomes = [_precheck(repo, group, options) for group in plan.groups]  # refusals that need no pixels first
    bar = ProgressBar(sys.stderr.isatty() or options.progress)
    for outcome in outcomes:
        if outcome.status == "pending":
            _build(repo, outcome, options, override, bar)
            bar.close()
    if options.json:
        for outcome in outcomes:
            print(json.dumps({"group": outcome.group.name, "label": outcome.group.label, "status": outcome.status,
                              "detail": outcome.detail, "frames": len(outcome.group.frames),
                              "result": outcome.result}))  # fmt: skip
        for account in plan.accounts:
            print(json.dumps({"file": account.path, "group": account.group, "reason": account.reason,
                              "hint": account.hint, "masked": account.masked}))  # fmt: skip
    else:
        print(summary_table(outcomes, options.kind))
        print(account_lines(plan.accounts))
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


def _precheck(repo: Repository, group: Group, options: ReduceOptions) -> Outcome:
    if group.refusal:
        return Outcome(group, "refused", group.refusal)
    first = group.frames[0]
    type_ = "ptc" if options.kind == "ptc" else options.kind
    filter_ = first.filter if type_ in ("flat", "ptc") else ""
    inputs = [str(f.path) for f in [*group.frames, *group.bias]]
    existing = repo.built_from(type_, first.signature, filter_, inputs)
    if existing and not options.force:
        last = existing[-1]
        return Outcome(group, "exists", f"product {last.id} v{last.version} from these frames (--force builds again)")
    if type_ != "ptc":
        try:
            pipelines.masters_for(repo, group.frames, type_)
        except pipelines.PipelineError as exc:
            return Outcome(group, "refused", str(exc))
    return Outcome(group, "pending", "")


def _build(repo: Repository, outcome: Outcome, options: ReduceOptions, override: str | None, bar: ProgressBar) -> None:
    group, kind = outcome.group, options.kind
    inputs = [str(f.path) for f in group.frames]
    try:
        if kind == "ptc":
            config: dict[str, Any] = {"inputs": inputs, "bias": [str(f.path) for f in group.bias], "force": True}
            result = catalog.run("cpPtc", repo, config, bar)
            outcome.status, outcome.detail = "built", _describe(result)
        else:
            config = {"inputs": inputs, "force": options.force, "iterations": options.iterations,
                      "method": options.method, "min_frames": options.min_frames}  # fmt: skip
            if override:
                config["imgtype"] = override
            result = catalog.run(f"cp{kind.capitalize()}", repo, config, bar)
            outcome.status, outcome.detail = "built", _describe(result)
            if options.verify:
                verify = {"product": result["product"], "inputs": inputs} | ({"imgtype": override} if override else {})
                verdict = catalog.run(f"cpVerify{kind.capitalize()}", repo, verify, bar)
                result["verification"] = verdict
                outcome.detail = _describe(result)
                if verdict["verdict"] != "passed":
                    outcome.status = "failed"
        outcome.result = result
    except (pipelines.PipelineError, FrameError, RepositoryError) as exc:
        outcome.status, outcome.detail = "failed", str(exc)


def summary_table(outcomes: list[Outcome], kind: str) -> str:
    """One row per group: name, frames, outcome and what it made or why not."""
    if not outcomes:
        return f"no {kind} groups: nothing to build (see the files below)"
    rows = [("GROUP", "FRAMES", "OUTCOME", "WHAT"), *[(o.group.name, str(len(o.group.frames)), o.status,
            f"{o.group.label}: {o.detail}") for o in outcomes]]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]) for r in rows]
    failed = sum(not o.ok for o in outcomes)
    lines.append(f"{len(outcomes)} groups: {len(outcomes) - failed} built or already built, {failed} not")
    return "\n".join(lines)


def account_lines(accounts: list[Account]) -> str:
    """Every file: used (per group), or skipped, by folder and reason, with the hint where there is one."""
    used = [a for a in accounts if a.used and not a.reason]
    lines = [f"files: {len(accounts)}, {len(used)} used, {len(accounts) - len(used)} not used"]
    by_group: dict[str, list[str]] = {}
    for account in used:
        by_group.setdefault(account.group, []).append(Path(account.path).name)
    for group, names in by_group.items():
        lines.append(f"  used in {group}: {_names(names)}")
    lines += [f"  masked: {Path(a.path).name}: {a.masked} pixels NaN or infinite" for a in used if a.masked]
    skipped: dict[tuple[str, str, str], list[str]] = {}
    for account in accounts:
        if account.reason:
            key = (str(Path(account.path).parent), account.reason, account.hint)
            skipped.setdefault(key, []).append(Path(account.path).name)
    for (folder, reason, hint), names in skipped.items():
        lines.append(f"  not used: {folder}/ {_names(names)}: {reason}" + (f" — {hint}" if hint else ""))
    return "\n".join(lines)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:6]) + (f", … ({len(names)} files)" if len(names) > 6 else "")
    return shown if len(names) > 1 else names[0]


def _describe(result: dict[str, Any]) -> str:
    if result.get("type") == "ptc":
        amps = ", ".join(f"{k} g={a['gain']:.3f} e-/ADU RN={a['noise_e']:.2f} e-" for k, a in result["amps"].items())
        return (f"ptc product {result['product']} from {result['n_flats']} flats (bias: {result['bias']}): {amps}; "
                f"range {result['range']}; plot {result['plot']}")  # fmt: skip
    verification = result.get("verification")
    extra = ""
    if verification:
        extra = f", verification {verification['verdict']}"
        if verification.get("noise_reference"):
            extra += f" (noise reference {verification['noise_reference']})"
        if verification.get("failures"):
            extra += "; " + "; ".join(verification["failures"][:3])
    return f"product {result['product']} v{result['version']} from {result['n_inputs']} frames{extra}: {result['path']}"


@dataclass(frozen=True)
class CalibOptions:
    """`obsq calib list | show ID | certify ID`."""

    repo: Path
    action: str  # list | show | certify
    type: str | None = None
    filter_expr: str | None = None
    id: int = 0
    begin_mjd: float = 0.0
    end_mjd: float = 0.0
    force: bool = False


def run_calib(options: CalibOptions) -> int:
    repo = Repository(options.repo, now=utc_now_unix)
    try:
        if options.action == "list":
            for p in repo.products(type_=options.type, where=options.filter_expr):
                ranges = ", ".join(f"[{b:.3f}, {e:.3f})" for b, e in p.certified) or "not certified"
                print(f"{p.id:>4} {p.type:<4} v{p.version:<2} {p.filter or '-':<22} {len(p.inputs):>3} inputs  "
                      f"{p.verified:<24} {ranges}")  # fmt: skip
        elif options.action == "show":
            product = repo.product(options.id)
            print(json.dumps(product.row() | {"file": str(repo.path_of(product)),
                                              "history": repo.history(product.id)}, indent=2))  # fmt: skip
        else:
            for line in repo.certify(options.id, options.begin_mjd, options.end_mjd, force=options.force):
                print(line)
    except RepositoryError as exc:
        print(f"obsq calib: {exc}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class DueOptions:
    """`obsq calib due`: the repository, the raw frames whose setups are in use, the policy."""

    repo: Path
    raws: Path
    days: float
    json: bool
    policy: Path | None


def run_due(options: DueOptions) -> int:
    """What the calibration policy makes due for the setups of the last days' raw frames, and why."""
    from obsq.csc.scheduler.library import default_policy_path, due_now, read_policy

    path = options.policy or default_policy_path()
    if path is None:
        raise RepositoryError("no calibration policy: give --policy FILE")
    products = Repository(options.repo, now=utc_now_unix).products()
    result = due_now(read_policy(path), products, options.raws, now_unix=utc_now_unix(), days=options.days)
    found = result.items
    if options.json:
        print(json.dumps([d.row() for d in found], indent=2))
        return 0
    unread = f" ({result.unread} file(s) not readable as frames)" if result.unread else ""
    print(f"{result.setups} setup(s) in the raws of the last {options.days:g} days under {options.raws}{unread}; "
          f"{result.masters} certified master(s)")  # fmt: skip
    if not found:
        print("nothing is due")
    for item in found:
        print(f"{item.type:<5} {item.setup}{', filter ' + item.filter if item.filter else ''}\n    {item.reason}")
    return 0
