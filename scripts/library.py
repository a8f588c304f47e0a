"""Finding and loading scripts: files under a standard, an external and any site roots.

A script is addressed as Rubin's are: a path relative to its root (`auxtel/take_image_latiss.py`)
and whether it is standard. Names starting with `.` or `_` are private; a path may not leave
its root. A script file defines exactly one BaseScript subclass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from obsq.csc.core.errors import ValidationError
from obsq.scripts.base import BaseScript

SITE_ROOTS_ENV = "OBSQ_SCRIPT_ROOTS"


@dataclass(frozen=True)
class ScriptRoots:
    """Where scripts are found: standard, external, and site roots searched as external."""

    standard: Path
    external: Path
    site: tuple[Path, ...] = ()

    @classmethod
    def default(cls) -> ScriptRoots:
        package = Path(str(resources.files("obsq.scripts")))
        site = tuple(Path(p) for p in os.environ.get(SITE_ROOTS_ENV, "").split(os.pathsep) if p)
        return cls(package / "standard", package / "external", site)

    def roots(self, standard: bool) -> tuple[Path, ...]:
        return (self.standard,) if standard else (self.external, *self.site)

    def resolve(self, path: str, standard: bool) -> Path:
        """The file of script `path`; ValidationError naming the script and the rule otherwise."""
        kind = "standard" if standard else "external"
        parts = Path(path).parts
        if not path.endswith(".py") or Path(path).is_absolute() or ".." in parts:
            raise ValidationError(f"script {path!r}: must be a relative .py path inside the {kind} root")
        if any(part.startswith((".", "_")) for part in parts):
            raise ValidationError(f"script {path!r}: names starting with '.' or '_' are private")
        for root in self.roots(standard):
            candidate = root / path
            if candidate.is_file():
                return candidate
        if any((root / path).is_file() for root in self.roots(not standard)):
            how = ("an external script: give --external (or \"standard\": false in a block)" if standard
                   else "a standard script: leave out --external (or \"standard\": true in a block)")  # fmt: skip
            raise ValidationError(f"unknown {kind} script {path!r}: it is {how}")
        raise ValidationError(f"unknown {kind} script {path!r}; see `obsq script list`")

    def available(self, standard: bool) -> list[str]:
        names: set[str] = set()
        for root in self.roots(standard):
            if root.is_dir():
                for file in root.rglob("*.py"):
                    rel = file.relative_to(root)
                    if not any(part.startswith((".", "_")) for part in rel.parts):
                        names.add(rel.as_posix())
        return sorted(names)


def check_configuration(cls: type[BaseScript], path: str, config: str) -> None:
    """ValidationError naming the script, the field and the rule unless `config` (YAML text) fits the script."""
    try:
        cls.validate_configuration(config)
    except ValidationError as exc:
        raise ValidationError(f"script {path}: {exc}") from None


def load_script_class(file: Path) -> type[BaseScript]:
    """The one BaseScript subclass defined in `file`."""
    name = "obsq_script_" + hashlib.sha1(str(file).encode(), usedforsecurity=False).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValidationError(f"script {file}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseScript) and obj.__module__ == name
    ]  # fmt: skip
    if len(classes) != 1:
        raise ValidationError(f"script {file}: must define exactly one BaseScript subclass, found {len(classes)}")
    return classes[0]
