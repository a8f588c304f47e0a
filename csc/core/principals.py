"""Principals of a site broker and the identities each may claim — pure rules, no I/O.

On a site broker a client is authenticated as a principal (its MQTT user name). A command is
published on `{root}/{Component}/{index}/cmd/{command}/{user}`, and the broker's ACL lets each
principal write only under its own user (`pattern write {root}/+/+/cmd/+/%u`), so the last
segment is the authenticated user. A component refuses a command whose `private_identity` is
not one of that user's identities:

- a component's principal (`ATDome`, `OCPS-1`, `ScriptQueue-2`) claims only its own identity
  (`ATDome`, `OCPS:1`, `ScriptQueue:2`);
- the scripts' principal (`Script`) claims `Script:{index}` identities;
- people (`operator`, `observer`) claim `user@host` identities, never a component's.

Without the user segment (a development broker, `mosquitto_pub` by hand) nothing is
authenticated: the identity is what the sender says. Nor is it for a user that is no site
principal (one shared user on a broker with passwords but no per-principal users): the site
ACL gives such a user no rights at all, so on a site broker it cannot command anything.
"""

from __future__ import annotations

from collections.abc import Collection

from obsq.csc.core.errors import TopicError
from obsq.csc.core.topics import ComponentId

#: People's principals: operators command, observers only read.
PEOPLE = ("operator", "observer")
#: The principal every script process runs as.
SCRIPTS_PRINCIPAL = "Script"


def principal_user(cid: ComponentId) -> str:
    """The MQTT user name of a component's principal: `ATDome`, `OCPS-1` (no `:`, which passwd files split on)."""
    return f"{cid.name}-{cid.index}" if cid.index else cid.name


def is_principal(user: str, component_names: Collection[str]) -> bool:
    """Whether `user` names a site principal (a component's, the scripts', a person's), bound to identities."""
    name, _, index = user.partition("-")
    return user in PEOPLE or user == SCRIPTS_PRINCIPAL or (name in component_names and (not index or index.isdigit()))


def identity_allowed(user: str, identity: str) -> bool:
    """Whether the authenticated `user` may send commands as `identity`."""
    if "@" in identity:
        return user in PEOPLE
    try:
        cid = ComponentId.parse(identity)
    except TopicError:
        return False
    if cid.name == SCRIPTS_PRINCIPAL:
        return user == SCRIPTS_PRINCIPAL and cid.index > 0
    return principal_user(cid) == user
