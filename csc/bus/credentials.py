"""Broker credentials from a file or the environment — never from a command line.

A command line is visible to every user of the host (`ps`), so a password reaches a process
only through:
- a credentials file (`--credentials FILE`, or `$OBSQ_CREDENTIALS`), lines of `KEY=value` as
  systemd's `EnvironmentFile=` reads them: `OBSQ_USERNAME`, `OBSQ_PASSWORD`, `OBSQ_CA_FILE`;
  it must not be readable by group or others (`chmod 600`);
- or those variables in the environment itself.

A parent hands a child its credentials the same way (`child_environment`): the variables, or
the path of the child's own principal's file, in the child's environment, never in its argv.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from obsq.csc.bus.url import BrokerUrl

CREDENTIALS_ENV = "OBSQ_CREDENTIALS"
USERNAME_ENV = "OBSQ_USERNAME"
PASSWORD_ENV = "OBSQ_PASSWORD"  # noqa: S105 — the name of a variable, not a password
CA_FILE_ENV = "OBSQ_CA_FILE"
#: On a queue's host: the credentials file of the principal its scripts run as (default: the queue's own).
SCRIPT_CREDENTIALS_ENV = "OBSQ_SCRIPT_CREDENTIALS"
#: On a site host: the folder of make-secrets' credentials files, one per principal (`obsq csc run`).
CREDENTIALS_DIR_ENV = "OBSQ_CREDENTIALS_DIR"
_KEYS = (USERNAME_ENV, PASSWORD_ENV, CA_FILE_ENV)


class CredentialsError(ValueError):
    """A credentials file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Credentials:
    """Who a process is on the broker: user name, password, and the CA that signs the broker's certificate."""

    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    source: str = "none"

    def __repr__(self) -> str:  # never print a password
        password = "'***'" if self.password else "None"
        return (
            f"Credentials(username={self.username!r}, password={password}, ca_file={self.ca_file!r},"
            f" source={self.source!r})"
        )

    @classmethod
    def from_file(cls, path: Path) -> Credentials:
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CredentialsError(f"credentials file {path}: cannot be read: {exc.strerror or exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(f"credentials file {path}: readable by others (mode {mode & 0o777:o}); chmod 600 it")
        values: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or key.strip() not in _KEYS:
                raise CredentialsError(
                    f"credentials file {path}, line {number}: expected one of {', '.join(_KEYS)} as KEY=value"
                )
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":  # quoted, as systemd allows
                value = value[1:-1]
            values[key.strip()] = value
        return cls(values.get(USERNAME_ENV), values.get(PASSWORD_ENV), values.get(CA_FILE_ENV), str(path))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """`$OBSQ_CREDENTIALS` (a file) if set, else `$OBSQ_USERNAME`/`$OBSQ_PASSWORD`/`$OBSQ_CA_FILE`."""
        env = os.environ if environ is None else environ
        if env.get(CREDENTIALS_ENV):
            return cls.from_file(Path(env[CREDENTIALS_ENV]))
        if not any(env.get(k) for k in _KEYS):
            return cls()
        return cls(env.get(USERNAME_ENV) or None, env.get(PASSWORD_ENV) or None, env.get(CA_FILE_ENV) or None, "env")

    def apply(self, url: BrokerUrl) -> BrokerUrl:
        """`url` with these credentials where they are given (the URL's own stay otherwise)."""
        return replace(
            url,
            username=self.username or url.username,
            password=self.password if self.username or self.password else url.password,
            ca_file=self.ca_file or url.ca_file,
        )


def script_credentials(environ: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file for the scripts a queue starts, from `$OBSQ_SCRIPT_CREDENTIALS`."""
    value = (os.environ if environ is None else environ).get(SCRIPT_CREDENTIALS_ENV)
    return Path(value) if value else None


def child_environment(url: BrokerUrl, credentials_file: Path | None = None) -> dict[str, str]:
    """The environment variables a child process needs to reach `url` as its parent does.

    With `credentials_file` (the child's own principal), just its path; else the parent's user
    name, password and CA file. The child's command line carries only the password-free URL.
    """
    if credentials_file is not None:
        return {CREDENTIALS_ENV: str(credentials_file)}
    own = ((USERNAME_ENV, url.username), (PASSWORD_ENV, url.password), (CA_FILE_ENV, url.ca_file))
    # a file the parent was given is replaced by what it resolved to
    return {CREDENTIALS_ENV: "", **{key: value for key, value in own if value}}
