"""The Alpaca address and client, against answers written by hand: what a device or its server can send (issue 24)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from obsq.csc.alpaca.address import parse_address
from obsq.csc.alpaca.client import AlpacaDevice, DeviceUnreachableError
from obsq.csc.alpaca.imagebytes import encode, error_body
from obsq.csc.alpaca.protocol import AlpacaError
from obsq.csc.clock import LoopClock
from obsq.csc.core.errors import DeviceError, ValidationError

IMAGEBYTES = {"content-type": "application/imagebytes"}
WHEEL = parse_address("alpaca://127.0.0.1:11111/filterwheel/0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpaca://127.0.0.1:11111/filterwheel/0", "http://127.0.0.1:11111/api/v1/filterwheel/0/"),
        ("alpaca://observatory.example/Camera/2", "http://observatory.example:11111/api/v1/camera/2/"),
        ("alpaca://[::1]:32323/dome/0", "http://[::1]:32323/api/v1/dome/0/"),
    ],
)
def test_addresses_give_the_device_url(text: str, expected: str) -> None:
    assert parse_address(text).base_url == expected


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("http://127.0.0.1/camera/0", "not an Alpaca address"),
        ("alpaca://127.0.0.1/camera", "names no device"),
        ("alpaca://127.0.0.1/toaster/0", "device type 'toaster' is not one of camera"),
        ("alpaca://127.0.0.1/filterwheel/-1", "device number '-1' is not a whole number"),
        ("alpaca://127.0.0.1:99999/camera/0", "is not an address"),
        ("alpaca://user:pw@127.0.0.1/camera/0", "has no user, query or fragment"),
        ("alpaca://bad_host!/camera/0", "has no valid host name"),
        ("alpaca://127.0.0.1/camera/0", "is a camera, not a filterwheel"),
    ],
)
def test_bad_addresses_are_refused_naming_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ValidationError, match=f"filter wheel: .*{rule}"):
        parse_address(text, expect="filterwheel", what="filter wheel")


def device(handler: Any) -> AlpacaDevice:
    return AlpacaDevice(WHEEL, call_timeout_s=1.0, transport=httpx.MockTransport(handler))


def answer(value: Any = None, number: int = 0, message: str = "") -> httpx.Response:
    return httpx.Response(200, json={"Value": value, "ErrorNumber": number, "ErrorMessage": message,
                                     "ClientTransactionID": 1, "ServerTransactionID": 1})  # fmt: skip


async def test_a_get_and_a_put_send_alpaca_s_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(["Red", "Green"] if request.method == "GET" else None)

    wheel = device(handler)
    assert await wheel.get("names") == ["Red", "Green"]
    await wheel.put("connected", Connected=True)
    await wheel.close()
    get, put = seen
    assert get.url.path == "/api/v1/filterwheel/0/names"
    assert get.url.params["ClientTransactionID"] == "1"
    form = dict(x.split("=") for x in put.content.decode().split("&"))
    assert form["Connected"] == "True"
    assert form["ClientTransactionID"] == "2"
    assert form["ClientID"] == get.url.params["ClientID"]


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (
            answer(None, 0x407, "Not connected"),
            r"filterwheel/0 GET position: Alpaca error 1031 \(0x407, NotConnected\)",
        ),
        (answer(None, 0x555, "the motor stalled"), r"0x555, DriverError\): the motor stalled"),
        (httpx.Response(500, text="driver crashed"), r"HTTP 500: driver crashed"),
        (httpx.Response(400, text="Position is required"), r"HTTP 400: Position is required"),
        (httpx.Response(200, text="<html>"), r"the answer is not JSON"),
        (httpx.Response(200, content=b"[" + b"1," * 600_000 + b"1]"), r"the answer is over 1,048,576 bytes"),
    ],
)
async def test_what_a_device_says_wrong_is_an_alpaca_error_naming_the_call(
    response: httpx.Response, match: str
) -> None:
    wheel = device(lambda _: response)
    with pytest.raises(AlpacaError, match=match):
        await wheel.get("position")
    await wheel.close()


async def test_a_server_that_is_not_there_is_unreachable_naming_the_call() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    wheel = device(handler)
    with pytest.raises(DeviceUnreachableError, match=r"alpaca://127.0.0.1:11111/filterwheel/0 PUT position: cannot"):
        await wheel.put("position", Position=1)
    await wheel.close()


async def test_a_read_timeout_is_unreachable_and_a_device_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    wheel = device(handler)
    with pytest.raises(DeviceError, match="no answer in time"):
        await wheel.get("position")
    await wheel.close()


async def test_an_image_comes_as_imagebytes_or_json_and_an_error_body_as_the_device_s_message() -> None:
    pixels = np.arange(12, dtype=np.int32).reshape(3, 4)  # 3 rows, 4 columns
    bodies = iter([
        httpx.Response(200, content=encode(pixels, transmission_type=2), headers=IMAGEBYTES),
        httpx.Response(200, content=json.dumps({"Value": pixels.T.tolist(), "ErrorNumber": 0, "ErrorMessage": ""})),
        httpx.Response(200, content=error_body(0x40B, "no image taken"), headers=IMAGEBYTES),
    ])  # fmt: skip
    camera = AlpacaDevice(
        parse_address("alpaca://127.0.0.1/camera/0"), transport=httpx.MockTransport(lambda _: next(bodies))
    )
    np.testing.assert_array_equal(await camera.image(), pixels)
    np.testing.assert_array_equal(await camera.image(), pixels)  # JSON's [x][y] transposed, as ImageBytes
    with pytest.raises(
        AlpacaError, match=r"GET imagearray: Alpaca error 1035 \(0x40B, InvalidOperation\): no image taken"
    ):
        await camera.image()
    await camera.close()


async def test_a_server_that_drips_its_answer_is_cut_off_at_the_call_s_bound() -> None:
    """Each byte in time for a read timeout, the whole answer never: the call still ends, named."""

    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for byte in b'{"Value": 1, "ErrorNumber": 0, "ErrorMessage": ""}':
                await LoopClock().sleep(0.05)
                yield bytes([byte])

    wheel = AlpacaDevice(
        WHEEL, call_timeout_s=0.5, transport=httpx.MockTransport(lambda _: httpx.Response(200, stream=Drip()))
    )
    with pytest.raises(
        DeviceUnreachableError,
        match=r"GET position: no whole answer within 1 s \(the device's server sends it too slowly\)",
    ):
        await wheel.get("position")
    await wheel.close()


async def test_a_connection_closed_under_a_get_is_asked_again_and_under_a_put_is_not() -> None:
    # the keep-alive race: the server closes an idle connection as the next call goes out on it
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) % 2:
            raise httpx.ReadError("connection closed by the server", request=request)
        return answer(3)

    wheel = device(handler)
    assert await wheel.get("position") == 3  # a GET changes nothing: asked again on a new connection
    assert calls == ["GET", "GET"]
    with pytest.raises(DeviceUnreachableError, match="PUT position"):
        await wheel.put("position", Position=2)  # a PUT may have been done: never sent twice
    assert calls == ["GET", "GET", "PUT"]
    await wheel.close()
