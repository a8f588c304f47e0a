"""Alpaca's JSON answers read as a device means them; errors named with their ASCOM meaning (issue 24)."""

from __future__ import annotations

import pytest

from obsq.csc.alpaca.protocol import AlpacaError, read_answer


def test_a_value_and_an_answer_without_one() -> None:
    assert read_answer(b'{"Value": 3, "ErrorNumber": 0, "ErrorMessage": "", "ClientTransactionID": 1}') == 3
    assert read_answer('{"ErrorNumber": 0, "ErrorMessage": ""}') is None  # a PUT's answer


@pytest.mark.parametrize(
    ("body", "number", "says"),
    [
        ('{"ErrorNumber": 1031, "ErrorMessage": "Camera not connected"}', 0x407, "0x407, NotConnected"),
        ('{"ErrorNumber": 1025, "ErrorMessage": "Position 9 out of range"}', 0x401, "InvalidValue"),
        ('{"ErrorNumber": 1280, "ErrorMessage": "USB timeout"}', 0x500, "DriverError): USB timeout"),
        ('{"ErrorNumber": 1100, "ErrorMessage": ""}', 1100, "UnknownError): (no message)"),
        ("<html>500</html>", 0x500, "not JSON"),
        ("[1, 2]", 0x500, "a JSON list, not an object"),
        ('{"ErrorNumber": "0"}', 0x500, "ErrorNumber is '0', not an integer"),
    ],
)
def test_errors_and_broken_answers_are_named(body: str, number: int, says: str) -> None:
    with pytest.raises(AlpacaError, match=r"filterwheel/0 position: Alpaca error") as err:
        read_answer(body, "filterwheel/0 position")
    assert err.value.number == number
    assert says in str(err.value)
    assert err.value.not_connected == (number == 0x407)
