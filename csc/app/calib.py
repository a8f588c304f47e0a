"""`obsq calib` (the calibration repository) and `obsq reduce` (masters and PTC from any folder of FITS).

`obsq reduce` works offline, without a broker or the services: it surveys the inputs from their
headers (`obsq.csc.reduction.survey`: groups as filabres makes them, and an account of every
file), refuses what needs no pixels to refuse, then builds each group on its own with the same
pipelines OCPS runs (a progress bar on stderr), and ends with a table of the groups and the
account of the files.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from obsq.csc.clock import perf_counter, utc_now_unix
from obsq.csc.ocps import catalog, pipelines
from obsq.csc.ocps.repository import Repository, RepositoryError
from obsq.csc.reduction.frames import BadFileError, Frame, FrameError, reusing_opened
from obsq.csc.reduction.survey import DEFAULT_MIN_FRAMES, UNUSABLE, Account, Group, SurveyError, survey


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
    #: groups built at once in local processes (1: one after the other, in this process)
    jobs: int = 1
    #: a Dask distributed scheduler (tcp://HOST:8786) whose workers build the groups; they see the same folders
    scheduler: str | None = None
    #: the registry (a path or postgresql:// URL); None: REPO/registry.sqlite3
    database: str | None = None


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
    """`_run_reduce`, each file's headers read once (survey, build and verification share the frames)."""
    with reusing_opened():
        return _run_reduce(options)


def _run_reduce(options: ReduceOptions) -> int:
    """Each group built or refused on its own, then a summary and an account of every file.

    Exit 0 if every group was built (or already was) and no file was refused as unusable, 1 if
    not, 2 if the request itself is refused. A file that turns out bad while its group is built
    (it changed, it is cut short) is named and the group is built again without it.
    """
    override = options.type_override.upper() if options.type_override else None
    try:
        plan = survey(options.inputs, options.kind, type_override=override, window_hours=options.window_hours,
                      min_frames=options.min_frames, now=perf_counter)  # fmt: skip
    except SurveyError as exc:
        print(f"obsq reduce: {exc}; nothing was built", file=sys.stderr)
        return 2
    repo = Repository(options.repo, now=utc_now_unix, database=options.database)
    accounts = {account.path: account for account in plan.accounts}
    outcomes = [_precheck(repo, group, options) for group in plan.groups]  # refusals that need no pixels first
    try:
        _build_all(repo, [o for o in outcomes if o.status == "pending"], options, override, accounts)
    except ClusterError as exc:
        print(f"obsq reduce: {exc}; nothing was built", file=sys.stderr)
        return 2
    _account_for_groups_not_built(outcomes, accounts)
    plan.accounts = [accounts[account.path] for account in plan.accounts]
    if options.json:
        for outcome in outcomes:
            print(json.dumps({"group": outcome.group.name, "label": outcome.group.label, "status": outcome.status,
                              "detail": outcome.detail, "frames": len(outcome.group.frames),
                              "result": _json_safe(outcome.result)}))  # fmt: skip
        for account in plan.accounts:
            print(json.dumps({"file": account.path, "group": account.group, "reason": account.reason,
                              "hint": account.hint, "masked": account.masked}))  # fmt: skip
    else:
        print(summary_table(outcomes, options.kind))
        print(account_lines(plan.accounts))
    refused = any(account.unusable for account in plan.accounts)
    return 0 if outcomes and all(o.ok for o in outcomes) and not refused else 1


def _build_all(
    repo: Repository, pending: list[Outcome], options: ReduceOptions, override: str | None,
    accounts: dict[str, Account],
) -> None:  # fmt: skip
    """One after the other here, or at once in local processes (--jobs) or on a Dask cluster (--scheduler)."""
    if options.scheduler or (options.jobs > 1 and len(pending) > 1):
        build_in_parallel(pending, options, override, accounts)
        return
    bar = ProgressBar(sys.stderr.isatty() or options.progress)
    for outcome in pending:
        _build_without_bad_files(repo, outcome, options, override, bar, accounts)
        bar.close()


def _account_for_groups_not_built(outcomes: list[Outcome], accounts: dict[str, Account]) -> None:
    """The frames of a group not built are not used: counted so, with the reason."""
    for outcome in outcomes:
        if not outcome.ok:
            for frame in outcome.group.frames:
                account = accounts[str(frame.path)]
                if account.used and not account.reason:
                    reason = f"{outcome.group.name} was {outcome.status}: {outcome.detail}"
                    accounts[str(frame.path)] = replace(account, reason=reason)


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
        except Exception as exc:  # a missing master (PipelineError), or any other failure, named
            return Outcome(group, "refused", _failure(exc))
    return Outcome(group, "pending", "")


def _build_without_bad_files(  # noqa: PLR0917 - the run's parts, passed down
    repo: Repository, outcome: Outcome, options: ReduceOptions, override: str | None, bar: ProgressBar,
    accounts: dict[str, Account],
) -> None:  # fmt: skip
    """Build the group; a file found changed since the survey, or bad while it is read, is dropped and named."""
    group = outcome.group
    for _ in range(len(group.frames) + len(group.bias)):
        bad = _changed_since_survey([*group.frames, *group.bias])
        if bad is None:
            bad = _build(repo, outcome, options, override, bar)
            if bad is None:
                return
        path, reason = bad
        accounts[str(path)] = Account(str(path), reason=f"{UNUSABLE}{reason}")
        group.frames = [f for f in group.frames if f.path != path]
        group.bias = [f for f in group.bias if f.path != path]
        if options.kind != "ptc" and len(group.frames) < options.min_frames:
            outcome.status = "failed"
            outcome.detail = (f"{path.name} was {reason.removesuffix(': not used')}; {len(group.frames)} frames "
                              f"left, fewer than the minimum {options.min_frames} (--min-frames)")  # fmt: skip
            return
        outcome.status, outcome.detail, outcome.result = "pending", "", None


class ClusterError(RuntimeError):
    """The Dask scheduler given cannot be used (unreachable, no workers); the message says which."""


#: Real seconds to reach a Dask scheduler, and to wait for its first worker.
CLUSTER_CONNECT_S = 30.0


def build_group(
    options: ReduceOptions, group: Group, override: str | None
) -> tuple[str, str, dict[str, Any] | None, dict[str, Account]]:
    """One group built where it is run (a local process or a Dask worker): its outcome and the files found bad.

    The worker opens the repository itself (the same folder, the same registry: `options.database`
    for several hosts) and reads the frames from their paths.
    """
    repo = Repository(options.repo, now=utc_now_unix, database=options.database)
    outcome = Outcome(group, "pending", "")
    accounts: dict[str, Account] = {}
    with reusing_opened():
        _build_without_bad_files(repo, outcome, options, override, ProgressBar(False), accounts)
    return outcome.status, outcome.detail, outcome.result, accounts


def build_in_parallel(
    pending: list[Outcome], options: ReduceOptions, override: str | None, accounts: dict[str, Account]
) -> None:
    """Every pending group at once: local processes (`jobs`) or the Dask cluster's workers (`scheduler`).

    A group that fails — or whose worker dies — is `failed` with the reason; the others go on.
    """
    import concurrent.futures as cf

    def settle(outcome: Outcome, run: Any) -> None:
        try:
            status, detail, result, bad = run()
        except Exception as exc:  # the worker died, or the cluster lost it: this group only
            outcome.status, outcome.detail = "failed", _failure(exc)
            return
        outcome.status, outcome.detail, outcome.result = status, detail, result
        accounts.update(bad)

    if options.scheduler:
        client = _dask_client(options.scheduler)
        try:
            futures = [client.submit(build_group, options, o.group, override, pure=False) for o in pending]
            for outcome, future in zip(pending, futures, strict=True):
                settle(outcome, future.result)
        finally:
            client.close()
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a clean interpreter: no threads or locks inherited
    with cf.ProcessPoolExecutor(max_workers=min(options.jobs, len(pending)), mp_context=context) as pool:
        submitted = [pool.submit(build_group, options, o.group, override) for o in pending]
        for outcome, future in zip(pending, submitted, strict=True):
            settle(outcome, future.result)


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client  # the cluster's client, loaded only when a scheduler is given
    except ImportError:
        raise ClusterError("--scheduler needs Dask's distributed package (pip install 'obsq[archive]')") from None
    try:
        client = Client(address, timeout=CLUSTER_CONNECT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"the Dask scheduler {address} cannot be reached ({exc})") from None
    try:
        client.wait_for_workers(1, timeout=CLUSTER_CONNECT_S)
    except (TimeoutError, OSError):
        client.close()  # type: ignore[no-untyped-call]
        raise ClusterError(f"the Dask scheduler {address} has no worker (waited {CLUSTER_CONNECT_S:g} s)") from None
    return client


def _changed_since_survey(frames: list[Frame]) -> tuple[Path, str] | None:
    for frame in frames:
        try:
            frame.unchanged()
        except BadFileError as exc:
            return exc.path, str(exc).removeprefix(f"{exc.path}: ")
    return None


def _build(
    repo: Repository, outcome: Outcome, options: ReduceOptions, override: str | None, bar: ProgressBar
) -> tuple[Path, str] | None:
    """Build one group; (path, reason) of an input found bad while it was read (the group is to be built again)."""
    group, kind = outcome.group, options.kind
    inputs = [str(f.path) for f in group.frames]
    try:
        if kind == "ptc":
            config: dict[str, Any] = {"inputs": inputs, "bias": [str(f.path) for f in group.bias], "force": True}
            result = catalog.run("cpPtc", repo, config, bar)
        else:
            config = {"inputs": inputs, "force": options.force, "iterations": options.iterations,
                      "method": options.method, "min_frames": options.min_frames}  # fmt: skip
            if override:
                config["imgtype"] = override
            result = catalog.run(f"cp{kind.capitalize()}", repo, config, bar)
    except BadFileError as exc:
        if any(f.path == exc.path for f in [*group.frames, *group.bias]):
            return exc.path, str(exc).removeprefix(f"{exc.path}: ")
        outcome.status, outcome.detail = "failed", str(exc)
        return None
    except Exception as exc:  # every failure of one group is named; the other groups go on
        outcome.status, outcome.detail = "failed", _failure(exc)
        return None
    outcome.status, outcome.detail, outcome.result = "built", _describe(result), result
    try:
        if kind != "ptc" and options.verify:
            verify = {"product": result["product"], "inputs": inputs} | ({"imgtype": override} if override else {})
            verdict = catalog.run(f"cpVerify{kind.capitalize()}", repo, verify, bar)
            result["verification"] = verdict
            outcome.detail = _describe(result)
            if verdict["verdict"] != "passed":
                outcome.status = "failed"
        unfilled = _pixels_without_input(repo, result)
    except Exception as exc:  # as above (a file that changes now fails the verification)
        outcome.status, outcome.detail = "failed", f"{outcome.detail}; verification: {_failure(exc)}"
        return None
    if unfilled:
        outcome.detail += f"; {unfilled}"
    return None


def _json_safe(value: Any) -> Any:
    """NaN and infinite numbers (a statistic of no pixels) as null: every line stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _failure(exc: Exception) -> str:
    """A group's failure in words: the message of the errors foreseen, the exception's kind too for the others."""
    if isinstance(exc, (pipelines.PipelineError, FrameError, RepositoryError)):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]} (not foreseen: a bug to report)"


def _pixels_without_input(repo: Repository, result: dict[str, Any]) -> str:
    """'N pixels had no finite input (set to the median)' for a master with such pixels, else ''."""
    if result.get("type") == "ptc" or "product" not in result:
        return ""
    amps = repo.product(int(result["product"])).stats.get("amps", {})
    counts = {amp: int(stats.get("n_bad", 0)) for amp, stats in amps.items() if stats.get("n_bad")}
    if not counts:
        return ""
    where = ", ".join(f"{amp} {n}" for amp, n in counts.items()) if len(amps) > 1 else ""
    total = sum(counts.values())
    return (f"{total} pixel{'s' * (total != 1)} had no usable input (NaN, infinite or saturated in every frame), "
            f"set to the master's median{f' ({where})' if where else ''}")  # fmt: skip


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
    unusable = sum(a.unusable for a in accounts)
    refused = f" ({unusable} refused as unusable: exit status 1)" if unusable else ""
    lines = [f"files: {len(accounts)}, {len(used)} used, {len(accounts) - len(used)} not used{refused}"]
    by_group: dict[str, list[str]] = {}
    for account in used:
        by_group.setdefault(account.group, []).append(Path(account.path).name)
    for group, names in by_group.items():
        lines.append(f"  used in {group}: {_names(names)}")
    lines += [f"  masked: {Path(a.path).name}: {a.masked} non-finite pixels masked (NaN or infinite)"
              for a in used if a.masked]  # fmt: skip
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
        if verification.get("header_disagreements"):
            extra += "; the header disagrees with the measurement (reported, not failed): "
            extra += "; ".join(verification["header_disagreements"][:3])
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


def _missing_repository(repo: Path) -> bool:
    """Say so (and return True) when there is no calibration repository where one is looked for."""
    if repo.is_dir():
        return False
    print(f"obsq calib: no calibration repository at {repo} (a data folder keeps it in repo/: give --data FOLDER "
          "or --repo FOLDER)", file=sys.stderr)  # fmt: skip
    return True


def run_calib(options: CalibOptions) -> int:
    if _missing_repository(options.repo):
        return 1
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
    if not options.raws.is_dir():
        print(f"obsq calib due: no raw frames folder at {options.raws}, so nothing can be judged due (give --raws "
              "FOLDER)", file=sys.stderr)  # fmt: skip
        return 1
    if options.repo.is_dir():
        products = Repository(options.repo, now=utc_now_unix).products()
    else:  # a site's first raws: no master yet, and no repository made for asking
        products = []
        print(f"obsq calib due: no calibration repository at {options.repo} yet: no master", file=sys.stderr)
    result = due_now(read_policy(path), products, options.raws, now_unix=utc_now_unix(), days=options.days)
    found = result.items
    if options.json:
        print(json.dumps([d.row() for d in found], indent=2))
        return 0
    unread = f" ({result.unread} file(s) not readable as frames)" if result.unread else ""
    print(f"{result.setups} setup(s) in the raws of the last {options.days:g} days under {options.raws}{unread}; "
          f"{result.masters} certified master(s)")  # fmt: skip
    if not result.setups:
        print(f"no raw frames of the last {options.days:g} days under {options.raws}: no setup in use, so nothing "
              "is judged due (a longer --days, or another --raws)")  # fmt: skip
    elif not found:
        print("nothing is due")
    for item in found:
        print(f"{item.type:<5} {item.setup}{', filter ' + item.filter if item.filter else ''}\n    {item.reason}")
    return 0
