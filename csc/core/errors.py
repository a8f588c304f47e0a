"""Exceptions of the wire layer and the component framework."""

from __future__ import annotations


class ObsqError(Exception):
    """Base class of every obsq error."""


class ExpectedError(ObsqError):
    """A command was refused for a reason the caller can act on; reported without traceback."""


class StateTransitionError(ExpectedError):
    """A state-transition command is not allowed in the current summary state."""


class ValidationError(ExpectedError):
    """A payload, configuration or file broke its schema; the message names the field and rule."""


class DecodeError(ObsqError):
    """A message could not be decoded (not JSON, not an object, too large, bad private fields)."""


class TopicError(ObsqError):
    """A topic does not follow the grammar `{root}/{Component}/{index}/{kind}/{name}`."""


class BusDisconnectedError(ObsqError):
    """The bus has no connection to the broker; nothing was sent."""


class ConfigurationError(ExpectedError):
    """A component configuration could not be read or failed validation."""


class UsageError(ObsqError):
    """A command line or request the user can fix: printed without a traceback (exit status 2)."""
