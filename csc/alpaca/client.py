"""An asynchronous Alpaca client: one device's GETs and PUTs, with its own timeouts, on the event loop.

The only module that imports httpx. Every call has a bound in real seconds (`CALL_TIMEOUT_S`
for the whole answer, `CONNECT_TIMEOUT_S` to connect); an image is read while bytes keep coming
(`IMAGE_STALL_S` between two reads, never a bound on the whole download, which depends on the
image's size and the link). What can go wrong is a DeviceError naming the device and the call:

- the device's own refusal or failure: AlpacaError with its number and message;
- no answer: DeviceUnreachableError (refused connection, timeout, reset), with what was asked.

Transaction ids follow the Alpaca API: one ClientID per client, ClientTransactionID counting up.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.imagebytes import DeviceReportedError, ImageBytesError, decode
from obsq.csc.alpaca.protocol import AlpacaError, read_answer
from obsq.csc.core.errors import DeviceUnreachableError

#: Real seconds to wait for a device's answer to one call.
CALL_TIMEOUT_S = 10.0
#: Real seconds to wait for a connection to the device's server.
CONNECT_TIMEOUT_S = 5.0
#: Real seconds an image download may go without a byte before it is given up.
IMAGE_STALL_S = 30.0
#: The largest answer read (an ImageBytes frame of 2^28 32-bit pixels and its header).
MAX_BODY_BYTES = 2**30 + 4096
#: The largest JSON answer read (a name list, a value).
MAX_JSON_BYTES = 1 << 20
#: Real seconds an idle connection is kept for the next call: well under the 5 s after which common servers
#: (uvicorn, Apache, ASCOM Remote's) close theirs, so a call is never sent on a connection the server is
#: closing at that moment (the keep-alive race: a PUT answered by a ReadError, which cannot be sent again).
KEEPALIVE_S = 2.0


class AlpacaDevice:
    """One Alpaca device: `get`, `put` and `image`, each a DeviceError on failure."""

    def __init__(
        self,
        address: AlpacaAddress,
        *,
        call_timeout_s: float = CALL_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.address = address
        self.call_timeout_s = call_timeout_s
        self.client_id = random.randint(1, 2**31 - 1)  # an id, not a secret
        self._transaction = itertools.count(1)
        timeout = httpx.Timeout(call_timeout_s, connect=CONNECT_TIMEOUT_S)
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_S)
        self._http = httpx.AsyncClient(base_url=address.base_url, timeout=timeout, transport=transport, limits=limits)

    async def close(self) -> None:
        await self._http.aclose()

    def _ids(self) -> dict[str, int]:
        return {"ClientID": self.client_id, "ClientTransactionID": next(self._transaction)}

    def _call(self, method: str, member: str) -> str:
        return f"{self.address} {method} {member}"

    async def get(self, member: str, **params: Any) -> Any:
        """The Value of GET `member`."""
        call = self._call("GET", member)
        try:
            body = await self._send(call, "GET", member, params={**params, **self._ids()}, limit=MAX_JSON_BYTES)
        except _ConnectionClosedError:  # a GET changes nothing: asked once more, on a new connection
            body = await self._send(call, "GET", member, params={**params, **self._ids()}, limit=MAX_JSON_BYTES)
        return read_answer(body, call)

    async def put(self, member: str, **form: Any) -> Any:
        """PUT `member` with the form fields `form` (booleans as Alpaca's True/False)."""
        call = self._call("PUT", member)
        fields = {k: _form_value(v) for k, v in form.items()} | {k: str(v) for k, v in self._ids().items()}
        body = await self._send(call, "PUT", member, data=fields, limit=MAX_JSON_BYTES)
        return read_answer(body, call)

    async def image(self) -> npt.NDArray[np.generic]:
        """The camera's last image, as ImageBytes where the server has it (JSON otherwise): rows × columns."""
        call = self._call("GET", "imagearray")
        params = self._ids()
        headers = {"Accept": "application/imagebytes"}
        timeout = httpx.Timeout(self.call_timeout_s, connect=CONNECT_TIMEOUT_S, read=IMAGE_STALL_S)
        request = self._http.stream("GET", "imagearray", params=params, headers=headers, timeout=timeout)
        try:
            async with request as answer:
                body = await _read_limited(answer, MAX_BODY_BYTES, call)
                kind = answer.headers.get("content-type", "")
                status = answer.status_code
        except httpx.HTTPError as exc:
            raise DeviceUnreachableError(f"{call}: {_why(exc)}") from None
        if status != 200:
            raise AlpacaError(0x500, f"HTTP {status}: {body[:300].decode(errors='replace').strip()}", call)
        if kind.startswith("application/imagebytes"):
            try:
                return decode(body)
            except DeviceReportedError as exc:
                raise AlpacaError(exc.number, exc.message, call) from None
            except ImageBytesError as exc:
                raise AlpacaError(0x500, f"a broken ImageBytes answer: {exc}", call) from None
        value = read_answer(body, call)  # a server without ImageBytes: the JSON array, [x][y]
        try:
            return np.asarray(value).T.copy()
        except (ValueError, TypeError) as exc:
            raise AlpacaError(0x500, f"the image array is not rectangular numbers ({exc})", call) from None

    async def _send(self, call: str, method: str, member: str, *, limit: int, **request: Any) -> bytes:
        """One call's answer, bounded twice.

        A silent server ends it after `call_timeout_s` (httpx's read timeout), one that drips it
        after twice that: a server sending a byte now and then never holds a command.
        """
        whole_s = 2 * self.call_timeout_s
        try:
            async with asyncio.timeout(whole_s), self._http.stream(method, member, **request) as answer:
                body = await _read_limited(answer, limit, call)
                status = answer.status_code
        except TimeoutError:
            raise DeviceUnreachableError(
                f"{call}: no whole answer within {whole_s:g} s (the device's server sends it too slowly)"
            ) from None
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:  # the server closed the connection under us
            raise _ConnectionClosedError(f"{call}: {_why(exc)}") from None
        except httpx.HTTPError as exc:
            raise DeviceUnreachableError(f"{call}: {_why(exc)}") from None
        if status != 200:  # Alpaca: 400 a bad request, 500 the driver failed; the body is the message
            raise AlpacaError(0x500, f"HTTP {status}: {body[:300].decode(errors='replace').strip()}", call)
        return body


class _ConnectionClosedError(DeviceUnreachableError):
    """The server closed the connection as the call was sent or answered: a GET may be asked again."""


async def _read_limited(answer: httpx.Response, limit: int, call: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise AlpacaError(0x500, f"the answer is over {limit:,} bytes", call)
        chunks.append(chunk)
    return b"".join(chunks)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time (the device's server stopped answering)"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc or 'refused'})"
    return f"{type(exc).__name__}: {exc or 'the connection failed'}"
