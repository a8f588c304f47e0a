"""Alpaca's JSON answers and error numbers, pure: what a device said, and what it means for a component.

Every Alpaca call answers a JSON object with `Value` (for a GET), `ErrorNumber` (0: no error)
and `ErrorMessage`, plus the transaction ids. A non-zero ErrorNumber is the device refusing or
failing the call: the ASCOM-defined numbers (0x400–0x4FF) name what kind of refusal it is; a
driver's own errors are 0x500–0xFFF. `read_answer` returns the value or raises `AlpacaError`
with the number, its ASCOM name and the device's own message.
"""

from __future__ import annotations

import json
from typing import Any

from obsq.csc.core.errors import DeviceError

#: ASCOM's error numbers (Alpaca API 2022 and alpyca's exceptions): the name and what it means here.
ASCOM_ERRORS: dict[int, tuple[str, str]] = {
    0x400: ("NotImplemented", "the device cannot do this"),
    0x401: ("InvalidValue", "a value out of the device's range"),
    0x402: ("ValueNotSet", "asked for a value the device does not have yet"),
    0x407: ("NotConnected", "the device is not connected"),
    0x408: ("InvalidWhileParked", "the mount is parked"),
    0x409: ("InvalidWhileSlaved", "the dome is slaved to the mount"),
    0x40B: ("InvalidOperation", "not allowed in the device's present state"),
    0x40C: ("ActionNotImplemented", "the device has no such action"),
    0x40E: ("OperationCancelled", "the operation was cancelled"),
}
#: The range of a driver's own error numbers.
DRIVER_ERRORS = range(0x500, 0x1000)


class AlpacaError(DeviceError):
    """A device's refusal or failure: its number, the ASCOM name of that number, and its own message."""

    def __init__(self, number: int, message: str, call: str = "") -> None:
        self.number = number
        self.message = message
        self.call = call
        self.name = error_name(number)
        where = f"{call}: " if call else ""
        super().__init__(f"{where}Alpaca error {number} (0x{number:X}, {self.name}): {message or '(no message)'}")

    @property
    def not_connected(self) -> bool:
        """The device says it is not connected: reconnecting, not retrying the call, is what helps."""
        return self.number == 0x407


def error_name(number: int) -> str:
    if number in ASCOM_ERRORS:
        return ASCOM_ERRORS[number][0]
    if number in DRIVER_ERRORS:
        return "DriverError"
    return "UnknownError"


def read_answer(body: bytes | str, call: str = "") -> Any:
    """The `Value` of an Alpaca JSON answer (None for a PUT); AlpacaError for a device error or a broken answer."""
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise AlpacaError(0x500, f"the answer is not JSON ({str(exc)[:200]})", call) from None
    if not isinstance(answer, dict):
        raise AlpacaError(0x500, f"the answer is a JSON {type(answer).__name__}, not an object", call)
    number = answer.get("ErrorNumber", 0)
    if not isinstance(number, int) or isinstance(number, bool):
        raise AlpacaError(0x500, f"the answer's ErrorNumber is {number!r}, not an integer", call)
    if number != 0:
        raise AlpacaError(number, str(answer.get("ErrorMessage", ""))[:2000], call)
    return answer.get("Value")
