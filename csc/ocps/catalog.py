"""The one registry of pipelines: each name, the configuration fields it needs, and how it runs.

The reduction service checks `execute` at the door against it (without loading the numeric
stack: each runner imports `pipelines.py` only when a job runs, in a worker); the workers and
`obsq reduce` run pipelines through `run`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from obsq.csc.core.errors import ExpectedError

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
    """One pipeline: what it does, the configuration fields it needs, and its runner."""

    summary: str
    required: tuple[str, ...]
    run: Runner


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


def _certify(repo: Repository, config: dict[str, Any], progress: Progress, job: str) -> Any:
    from obsq.csc.ocps import pipelines

    return pipelines.certify(repo, config)


PIPELINES: dict[str, Pipeline] = {
    "cpBias": Pipeline("master bias from raw biases", ("inputs",), _master("bias")),
    "cpDark": Pipeline("master dark from raw darks (bias subtracted)", ("inputs",), _master("dark")),
    "cpFlat": Pipeline("master flat from raw flats of one filter", ("inputs",), _master("flat")),
    "cpVerifyBias": Pipeline("cp_verify checks of a master bias", ("product", "inputs"), _verify),
    "cpVerifyDark": Pipeline("cp_verify checks of a master dark", ("product", "inputs"), _verify),
    "cpVerifyFlat": Pipeline("cp_verify checks of a master flat", ("product", "inputs"), _verify),
    "cpFlatLevel": Pipeline("flat level against the misalignment limit", ("inputs",), _flat_level),
    "cpVerifyCounts": Pipeline("images received against images planned", ("planned", "groupid"), _counts),
    "cpPtc": Pipeline("photon transfer curve from flat pairs", ("inputs",), _ptc),
    "certify": Pipeline("certify a product for a validity range", ("product", "begin_mjd", "end_mjd"), _certify),
}


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


def run(name: str, repo: Repository, config: dict[str, Any], progress: Progress = _quiet, job: str = "local") -> Any:
    """Run pipeline `name` on `config` (checked with `parse_request` first)."""
    return PIPELINES[name].run(repo, config, progress, job)


def parse_request(pipeline: str, text: str) -> dict[str, Any]:
    """The `execute` fields checked: the pipeline is known, config is a JSON object with its fields."""
    spec = PIPELINES.get(pipeline)
    if spec is None:
        raise RequestError(f"execute: pipeline {pipeline!r} is not one of {', '.join(PIPELINES)}")
    try:
        config = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise RequestError(f"execute: config is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(config, dict):
        raise RequestError(f"execute: config must be a JSON object, not {type(config).__name__}")
    missing = [f for f in spec.required if f not in config]
    if missing:
        raise RequestError(f"execute: {pipeline} config lacks {', '.join(missing)}")
    if "inputs" in config and not (
        isinstance(config["inputs"], list) and all(isinstance(i, str) for i in config["inputs"])
    ):
        raise RequestError(f"execute: {pipeline} config field inputs must be a list of file paths")
    return config
