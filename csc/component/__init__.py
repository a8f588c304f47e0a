"""The component framework, by role.

- `base.py`: BaseComponent — commands and acks, retained events, heartbeat, logs.
- `csc.py`: BaseCsc — the summary-state machine around BaseComponent.
- `remote.py`: Remote — the client side: commands awaited to their final ack.
- `reader.py`: TopicReader — a Remote's received samples of one topic; Life and Deadline — waits on a
  component measured against its life as its heartbeats show it.
- `stamp.py`: the private fields (seqNum, identity, origin, send time) of every message.

The names below are the public API, importable from `obsq.csc.component`.
"""

from obsq.csc.component.base import HEARTBEAT_INTERVAL_S, BaseComponent, Command, CommandHandler
from obsq.csc.component.csc import BaseCsc
from obsq.csc.component.reader import Deadline, Life, TopicReader
from obsq.csc.component.remote import (
    DEFAULT_COMMAND_TIMEOUT_S,
    Ack,
    AckError,
    AckTimeoutError,
    CommandLinkLostError,
    Remote,
)
from obsq.csc.component.stamp import user_identity

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT_S",
    "HEARTBEAT_INTERVAL_S",
    "Ack",
    "AckError",
    "AckTimeoutError",
    "BaseComponent",
    "BaseCsc",
    "Command",
    "CommandHandler",
    "CommandLinkLostError",
    "Deadline",
    "Life",
    "Remote",
    "TopicReader",
    "user_identity",
]
