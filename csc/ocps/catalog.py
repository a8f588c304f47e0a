"""The one registry of pipelines: each name, the JSON Schema of its configuration, and how it runs.

The reduction service checks `execute` at the door against it (without loading the numeric
stack: each runner imports `pipelines.py` only when a job runs, in a worker): the pipeline is
known and its configuration, strict JSON (no NaN, no key twice), validates against the
pipeline's own schema, so a wrong type is refused by field and rule, never met inside a job.
The workers and `obsq reduce` run pipelines through `run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from obsq.csc.core.errors import ExpectedError, ValidationError

if TYPE_CHECKING:
    from obsq.csc.ocps.repository import Repository

#: The kinds of product a repository holds.
PRODUCT_TYPES = ("bias", "dark", "flat", "ptc")
Progress = Callable[[str, int, int], None]
Runner = Callable[["Repository", dict[str, Any], Progress, str], Any]


class RequestError(ExpectedError):
    """An `execute` request refused at the door: the message names the pipeline and the field."""


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: what it does, the JSON Schema of its configuration, and its runner."""

    summary: str
    schema: dict[str, Any]
    run: Runner


_PATHS = {"type": "array", "minItems": 1, "maxItems": 100_000, "items": {"type": "string", "minLength": 1}}
_COMMON = {
    "force": {"type": "boolean", "description": "build again even if the same inputs and configuration were"},
    "collection": {"type": "string", "minLength": 1, "maxLength": 200},
}
_PRODUCT = {"type": "integer", "minimum": 1}


def _schema(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {**_COMMON, **properties},
    }


_IMGTYPE = {"enum": ["BIAS", "DARK", "FLAT"], "description": "treat every input as this image type"}
_MASTER = _schema(
    ["inputs"],
    inputs=_PATHS,
    imgtype=_IMGTYPE,
    min_frames={"type": "integer", "minimum": 1, "maximum": 100_000, "description": "fewest inputs (default 3)"},
    method={"enum": ["clipped_mean", "median"]},
    sigma={"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    iterations={"type": "integer", "minimum": 1, "maximum": 50},
    saturation={"type": "number", "exclusiveMinimum": 0},
)
_VERIFY = _schema(
    ["product", "inputs"], product=_PRODUCT, inputs=_PATHS, imgtype=_IMGTYPE,
    max_failures={"type": "integer", "minimum": 0},
)  # fmt: skip
_PLANNED = {
    "type": "array",
    "maxItems": 10_000,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["imgtype", "filter", "exptime", "count"],
        "properties": {
            "imgtype": {"type": "string", "minLength": 1},
            "filter": {"type": "string"},
            "exptime": {"type": "number", "minimum": 0},
            "count": {"type": "integer", "minimum": 0},
        },
    },
}


def _master(kind: str) -> Runner:
    def run(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
        from obsq.csc.ocps import pipelines

        return pipelines.build_master(repo, config | {"type": kind}, progress)

    return run


def _verify(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.verify_master(repo, config, progress, job)


def _flat_level(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.flat_level(repo, config, progress, job)


def _counts(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.count_check(repo, config, job)


def _ptc(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.run_ptc(repo, config, progress)


def _report(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import report

    return report.build_report(repo, config, job)


def _certify(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.certify(repo, config)


_MJD = {"type": "number", "minimum": 0, "maximum": 1_000_000}
_TEXT = {"type": "string", "maxLength": 200}
_SELECT = {
    "type": "object", "additionalProperties": False,
    "description": "flats of the acquired-images registry, by what each field names (all when absent)",
    "properties": {
        "program": _TEXT, "reason": _TEXT, "filter": _TEXT, "grating": _TEXT,
        "exptimes": {"type": "array", "maxItems": 10_000, "items": {"type": "number", "minimum": 0}},
        "groupids": {"type": "array", "maxItems": 10_000, "items": _TEXT},
    },
}  # fmt: skip
#: Pipelines that read the service's own registries: the service sets where (a client cannot point them elsewhere).
READS_REGISTRIES = ("cpReport", "cpPtc")

PIPELINES: dict[str, Pipeline] = {
    "cpBias": Pipeline("master bias from raw biases", _MASTER, _master("bias")),
    "cpDark": Pipeline("master dark from raw darks (bias subtracted)", _MASTER, _master("dark")),
    "cpFlat": Pipeline("master flat from raw flats of one filter", _MASTER, _master("flat")),
    "cpVerifyBias": Pipeline("cp_verify checks of a master bias", _VERIFY, _verify),
    "cpVerifyDark": Pipeline("cp_verify checks of a master dark", _VERIFY, _verify),
    "cpVerifyFlat": Pipeline("cp_verify checks of a master flat", _VERIFY, _verify),
    "cpFlatLevel": Pipeline(
        "flat level against the misalignment limit (biases: the set's, for a camera without overscan)",
        _schema(["inputs"], inputs=_PATHS, biases=_PATHS),
        _flat_level,
    ),
    "cpVerifyCounts": Pipeline(
        "images received against images planned",
        _schema(
            ["planned", "groupid"],
            planned=_PLANNED,
            groupid={"type": "string", "minLength": 1},
            registry={"type": "string", "minLength": 1},
        ),
        _counts,
    ),
    "cpPtc": Pipeline(
        "photon transfer curve from flat pairs (biases as bias): the `inputs`, or the flats the acquired-images"
        " registry holds that match `select`",
        _schema([], inputs=_PATHS, bias=_PATHS, select=_SELECT),
        _ptc,
    ),
    "cpReport": Pipeline(
        "the calibration report of a run: its images (by its group ids), the masters, checks and jobs since it "
        "began, the PTC; writes repo/reports/JOB/report.html",
        _schema(
            [],
            since={"type": "number", "minimum": 0, "description": "UTC unix s when the run began"},
            groupids={"type": "array", "maxItems": 10_000, "items": _TEXT},
            summary={"type": "object"},
        ),
        _report,
    ),
    "certify": Pipeline(
        "certify a product for a validity range",
        _schema(["product", "begin_mjd", "end_mjd"], product=_PRODUCT, begin_mjd=_MJD, end_mjd=_MJD),
        _certify,
    ),
}


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


def run(name: str, repo: Repository, config: dict[str, Any], progress: Progress = _quiet, job: str = "local") -> Any:
    """Run pipeline `name` on `config` (checked with `parse_request` first)."""
    return PIPELINES[name].run(repo, config, progress, job)


def parse_request(pipeline: str, text: str) -> dict[str, Any]:
    """The `execute` fields checked: the pipeline is known, config is a JSON object valid under its schema."""
    from obsq.csc.core.codec import parse_strict_json
    from obsq.csc.core.interface import make_validator

    spec = PIPELINES.get(pipeline)
    if spec is None:
        raise RequestError(f"execute: pipeline {pipeline[:64]!r} is not one of {', '.join(PIPELINES)}")
    try:
        config = parse_strict_json(text or "{}")
    except ValueError as exc:
        raise RequestError(f"execute: {pipeline} config is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise RequestError(f"execute: {pipeline} config must be a JSON object, not {type(config).__name__}")
    try:
        make_validator(spec.schema).validate(f"execute: {pipeline} config", config)
    except ValidationError as exc:
        raise RequestError(str(exc)) from None
    if pipeline == "cpPtc" and ("inputs" in config) == ("select" in config):
        raise RequestError(
            "execute: cpPtc config: give the flats as 'inputs' or as 'select', one of them (rule: oneOf)"
        )
    if pipeline == "certify" and not config["begin_mjd"] < config["end_mjd"]:
        raise RequestError("execute: certify config: begin_mjd must be before end_mjd (rule: range)")
    return config
