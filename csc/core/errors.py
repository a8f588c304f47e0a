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


class DeviceError(ExpectedError):
    """A real device refused, failed or did not answer a call; the message names the device and the call.

    A driver raises it (or a subclass); the service goes FAULT with its message, and the command
    that asked fails with it.
    """


class DeviceTimeoutError(DeviceError):
    """A device did not finish what it was asked in its time (a stuck wheel, a slew that never ends)."""


class DeviceUnreachableError(DeviceError):
    """A device's server did not answer (refused, timed out, or dropped the connection)."""


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
