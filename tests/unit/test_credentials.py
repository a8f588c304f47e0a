"""Credentials come from a file or the environment, never from a command line, and children inherit them."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsq.csc.app.connection import Connection
from obsq.csc.bus.credentials import (
    CREDENTIALS_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    Credentials,
    CredentialsError,
    child_environment,
)
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.core.errors import UsageError

SECRET = "s3cr3t-Pa55"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_credentials_file_is_read_and_applied(tmp_path: Path) -> None:
    file = write(
        tmp_path / "ATDome.env", f"# ATDome\nOBSQ_USERNAME=ATDome\nOBSQ_PASSWORD={SECRET}\nOBSQ_CA_FILE=/ca.crt\n"
    )
    credentials = Credentials.from_file(file)
    url = credentials.apply(BrokerUrl.parse("mqtts://broker.site:8883"))
    assert (url.username, url.password, url.ca_file) == ("ATDome", SECRET, "/ca.crt")
    assert SECRET not in repr(credentials)
    assert SECRET not in str(url)


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        (f"OBSQ_PASSWORD={SECRET}\n", 0o644, "readable by others \\(mode 644\\); chmod 600 it"),
        ("PASSWORD=x\n", 0o600, "line 1: expected one of OBSQ_USERNAME, OBSQ_PASSWORD, OBSQ_CA_FILE"),
        ("just text\n", 0o600, "line 1: expected one of"),
    ],
)
def test_a_bad_credentials_file_is_named(tmp_path: Path, text: str, mode: int, message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        Credentials.from_file(write(tmp_path / "c.env", text, mode))
    with pytest.raises(CredentialsError, match="cannot be read"):
        Credentials.from_file(tmp_path / "missing.env")


def test_the_environment_gives_a_file_or_the_values(tmp_path: Path) -> None:
    file = write(tmp_path / "ops.env", f"OBSQ_USERNAME=operator\nOBSQ_PASSWORD={SECRET}\n")
    assert Credentials.from_environment({CREDENTIALS_ENV: str(file)}).username == "operator"
    assert Credentials.from_environment({USERNAME_ENV: "observer", PASSWORD_ENV: "x"}).password == "x"
    assert Credentials.from_environment({}) == Credentials()


def test_a_password_on_the_command_line_is_refused_and_one_in_a_file_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (CREDENTIALS_ENV, USERNAME_ENV, PASSWORD_ENV):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UsageError, match="a password on the command line is visible to every user of this host"):
        Connection(broker=f"mqtt://me:{SECRET}@127.0.0.1:1883", broker_from_command_line=True).url()
    assert Connection(broker=f"mqtt://me:{SECRET}@127.0.0.1:1883").url().password == SECRET  # from $OBSQ_BROKER
    file = write(tmp_path / "me.env", f"OBSQ_USERNAME=me\nOBSQ_PASSWORD={SECRET}\n")
    url = Connection(broker="mqtt://127.0.0.1:1883", credentials=file, broker_from_command_line=True).url()
    assert (url.username, url.password) == ("me", SECRET)
    with pytest.raises(UsageError, match="readable by others"):
        Connection(
            broker="mqtt://127.0.0.1:1883", credentials=write(tmp_path / "open.env", "OBSQ_USERNAME=me\n", 0o644)
        ).url()


def test_children_get_credentials_in_their_environment_not_their_argv(tmp_path: Path) -> None:
    url = BrokerUrl("broker.site", 8883, tls=True, username="ScriptQueue-2", password=SECRET, ca_file="/ca.crt")
    env = child_environment(url)
    assert env == {CREDENTIALS_ENV: "", USERNAME_ENV: "ScriptQueue-2", PASSWORD_ENV: SECRET, "OBSQ_CA_FILE": "/ca.crt"}
    assert Credentials.from_environment(env).apply(BrokerUrl.parse(str(url))).password == SECRET
    assert SECRET not in str(url)  # what goes on the child's command line
    own = tmp_path / "Script.env"
    assert child_environment(url, own) == {CREDENTIALS_ENV: str(own)}


def test_a_file_written_for_systemd_reads_the_same(tmp_path: Path) -> None:
    text = f"OBSQ_USERNAME='ATDome'\r\nOBSQ_PASSWORD=\"{SECRET}\"\r\n\r\n# rotated 2026-12-01\r\n"
    credentials = Credentials.from_file(write(tmp_path / "ATDome.env", text))
    assert (credentials.username, credentials.password) == ("ATDome", SECRET)
