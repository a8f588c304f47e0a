"""What the page reads besides the bus: the blocks' and scripts' forms; the data folder's frames, masters, report.

All of it is blocking file and database work; the server runs it in a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from obsq.csc.app.queue import strategy_names
from obsq.csc.clock import utc_now_unix
from obsq.csc.core.errors import ObsqError, ValidationError
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.database import Registries, exists
from obsq.csc.ocps.report import preview
from obsq.csc.scriptqueue.blocks import available_blocks, block_folders
from obsq.csc.scriptqueue.model import Location
from obsq.scripts.library import ScriptRoots, load_script_class

#: Previews kept in memory (each a few tens of kB).
PREVIEWS = 64


class NotFoundError(ObsqError):
    """A frame, product or page the data folder does not hold."""


@lru_cache(maxsize=1)
def forms() -> dict[str, Any]:
    """Every block and script with its configuration's JSON Schema (None: takes no configuration)."""
    blocks = []
    for program, file in sorted(available_blocks(block_folders()).items()):
        data = json.loads(file.read_text())
        text = data.get("configuration_schema", "")
        try:
            schema = load_yaml(text, f"block {program}: configuration_schema") if text.strip() else None
        except ValidationError:
            schema = None
        blocks.append({"id": program, "name": data.get("name", ""), "schema": schema,
                       "scripts": [s["name"] for s in data.get("scripts", [])]})  # fmt: skip
    scripts = []
    roots = ScriptRoots.default()
    for standard in (True, False):
        for path in roots.available(standard):
            cls = load_script_class(roots.resolve(path, standard))
            scripts.append({"path": path, "standard": standard, "description": cls.description,
                            "schema": cls.get_schema() or None})  # fmt: skip
    return {"blocks": blocks, "scripts": scripts, "strategies": list(strategy_names()),
            "locations": {location.name.lower(): int(location) for location in Location}}  # fmt: skip


@dataclass
class DataFolder:
    """The data folder `obsq up` writes: raw frames, the calibration repository, the weekly runs' reports."""

    root: Path
    database: str | None = None
    _previews: dict[tuple[str, float], bytes] = field(default_factory=dict)

    def forms(self) -> dict[str, Any]:
        return forms()

    def _cached_preview(self, path: Path) -> bytes:
        try:
            key = (str(path), path.stat().st_mtime)
        except OSError:
            raise NotFoundError(f"{path} is not on this host (the page shows files of {self.root})") from None
        png = self._previews.get(key)
        if png is None:
            try:
                png = preview(path)
            except (OSError, ValueError) as exc:
                raise NotFoundError(f"{path.name}: cannot be shown ({exc})") from None
            if len(self._previews) >= PREVIEWS:
                self._previews.pop(next(iter(self._previews)))
            self._previews[key] = png
        return png

    def raw_preview(self, path: Path) -> bytes:
        """A preview of a raw frame the camera announced; only files inside the data folder are read."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise NotFoundError(f"{path} is outside the data folder {self.root}")
        return self._cached_preview(resolved)

    def _repository(self) -> Any:
        from obsq.csc.ocps.repository import Repository

        registries = Registries.at(self.root, self.database)
        if not exists(registries.calibration):
            return None
        return Repository(self.root / "repo", now=utc_now_unix, database=registries.calibration)

    def masters(self) -> dict[str, Any]:
        """Every master (newest first) with its verification and certification (superseded ones say so); any PTC."""
        from obsq.csc.ocps.repository import certification_text

        repo = self._repository()
        where = str(self.root / "repo")
        if repo is None:
            return {"masters": [], "ptc": False, "repository": where}
        superseded = repo.superseded()
        masters = [
            {"id": p.id, "type": p.type, "filter": p.filter, "version": p.version, "inputs": len(p.inputs),
             "created": p.created, "verified": p.verified, "certified": bool(p.certified),
             "certification": certification_text(p, superseded)}
            for p in reversed(repo.products()) if p.type != "ptc"
        ]  # fmt: skip
        return {"masters": masters, "ptc": bool(repo.products(type_="ptc")), "repository": where}

    def master_preview(self, product_id: int) -> bytes:
        repo = self._repository()
        if repo is None:
            raise NotFoundError("no calibration repository yet")
        try:
            product = repo.product(product_id)
        except ValueError:
            raise NotFoundError(f"no product {product_id}") from None
        return self._cached_preview(repo.path_of(product))

    def ptc_plot(self) -> Path | None:
        repo = self._repository()
        ptcs = repo.products(type_="ptc") if repo is not None else []
        plot: Path | None = repo.path_of(ptcs[-1]) if ptcs else None
        return plot if plot is not None and plot.exists() else None

    def latest_report(self) -> Path | None:
        """The newest report OCPS:1 wrote into the repository the Masters table reads (never another run's)."""
        pages = sorted(self.root.glob("repo/reports/*/report.html"), key=lambda p: p.stat().st_mtime)
        return pages[-1] if pages else None
