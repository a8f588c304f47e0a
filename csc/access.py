"""Who may do what on a site broker: the grants of each principal, and the Mosquitto ACL made from them.

The grants are the design: every principal serves its own namespace (reads its commands,
writes its events, telemetry and acks) and, beyond that, reads and commands only what its code
uses. `deploy/mosquitto/acl` is `mosquitto_acl("obsq")` (a test keeps the shipped file equal to
it), and tests run the services and a whole block on a recording memory broker and check that
every subscription and publication is one these grants allow, so the two cannot drift.

Commands are written on `{root}/{C}/{i}/cmd/{command}/{user}` only (see `core/principals.py`): a
user may write a command only under its own user name.
"""

from __future__ import annotations

from dataclasses import dataclass

from obsq.csc.core.principals import PEOPLE, SCRIPTS_PRINCIPAL, principal_user
from obsq.csc.core.topics import ComponentId, filter_matches
from obsq.csc.observatory import OBSERVATORY, SCHEDULER

_TELESCOPE = tuple(cid for cid, _ in OBSERVATORY if cid.name.startswith("AT"))
_OCPS = next(cid for cid, _ in OBSERVATORY if cid.name == "OCPS")
_QUEUE = next(cid for cid, _ in OBSERVATORY if cid.name == "ScriptQueue")
_ANY_SCRIPT = "Script/+"


def _place(cid: ComponentId) -> str:
    return f"{cid.name}/{cid.index}"


@dataclass(frozen=True)
class Grant:
    """One principal's rights: the namespace it serves, what it observes, what it commands, what else it writes."""

    user: str
    serves: str | None = None  # "ATDome/0", "Script/+"
    observes: tuple[str, ...] = ()  # component places whose events, telemetry and acks it reads; "+/+" for all
    commands: tuple[str, ...] = ()  # component places it may command
    writes: tuple[str, ...] = ()  # further topics (relative to the root) it may write
    reads_everything: bool = False

    def rules(self, root: str) -> list[tuple[str, str]]:
        """(access, topic filter) pairs, access `read` or `write`."""
        rules: list[tuple[str, str]] = []
        if self.reads_everything:
            rules.append(("read", f"{root}/#"))
        if self.serves:
            base = f"{root}/{self.serves}"
            rules += [("read", f"{base}/cmd/#"), ("write", f"{base}/evt/#"), ("write", f"{base}/tel/#"),
                      ("write", f"{base}/ackcmd")]  # fmt: skip
        for place in dict.fromkeys((*self.observes, *self.commands)):
            if not self.reads_everything:
                rules += [("read", f"{root}/{place}/evt/#"), ("read", f"{root}/{place}/tel/#"),
                          ("read", f"{root}/{place}/ackcmd")]  # fmt: skip
        rules += [("write", f"{root}/{place}/cmd/+/{self.user}") for place in self.commands]
        rules += [("write", f"{root}/{topic}") for topic in self.writes]
        return rules


def grants() -> list[Grant]:
    """Every principal of a site broker (`observatory.site_principals`) and its rights."""
    telescope = tuple(_place(cid) for cid in _TELESCOPE)
    camera_reads = tuple(p for p in telescope if not p.startswith("ATCamera"))  # its illumination model
    result = [
        Grant(principal_user(cid), _place(cid), camera_reads if cid.name == "ATCamera" else ()) for cid in _TELESCOPE
    ]
    result += [
        Grant(principal_user(_OCPS), _place(_OCPS)),
        # the queue runs scripts: commands them, follows them, clears a finished script's retained events
        Grant(principal_user(_QUEUE), _place(_QUEUE), commands=(_ANY_SCRIPT,), writes=(f"{_ANY_SCRIPT}/evt/#",)),
        # the scheduler queues blocks and guards on every component's state
        Grant(principal_user(SCHEDULER), _place(SCHEDULER), observes=("+/+",), commands=(_place(_QUEUE),)),
        # scripts drive the telescope and the reduction service (the weekly's scripts, and no more)
        Grant(SCRIPTS_PRINCIPAL, _ANY_SCRIPT, commands=(*telescope, _place(_OCPS))),
        Grant(PEOPLE[0], commands=("+/+",), reads_everything=True),  # operator
        Grant(PEOPLE[1], reads_everything=True),  # observer
    ]
    return result


def mosquitto_acl(root: str) -> str:
    """The Mosquitto ACL file for `root`."""
    lines = [
        f"# obsq ACL for deploy/mosquitto/site.conf, topic root {root!r}: made by `obsq csc acl --root {root}`",
        "# from csc/access.py (edit that, not this). User names are the principals of `obsq csc principals`.",
        "# Commands are written on {root}/{Component}/{index}/cmd/{command}/{user}, each user under its own name.",
    ]
    for grant in grants():
        lines += ["", f"user {grant.user}"]
        lines += [f"topic {access} {topic}" for access, topic in grant.rules(root)]
    return "\n".join(lines) + "\n"


def allowed(grant: Grant, root: str, access: str, topic: str) -> bool:
    """Whether `grant` lets its principal `access` (`read`: subscribe to a filter; `write`: publish) `topic`.

    A subscription is allowed when one read rule covers the whole filter (rule wildcards are at
    least as wide, level by level); a publication when a write rule matches the topic.
    """
    rules = [rule for kind, rule in grant.rules(root) if kind == access]
    if access == "write":
        return any(filter_matches(rule, topic) for rule in rules)
    return any(_covers(rule, topic) for rule in rules)


def _covers(rule: str, topic_filter: str) -> bool:
    rule_levels, levels = rule.split("/"), topic_filter.split("/")
    for i, level in enumerate(levels):
        if i >= len(rule_levels):
            return False
        if rule_levels[i] == "#":
            return True
        if rule_levels[i] == "+" and level == "#":
            return False
        if rule_levels[i] != "+" and (rule_levels[i] != level or level in ("+", "#")):
            return False
    return len(rule_levels) == len(levels) or rule_levels[len(levels)] == "#"
