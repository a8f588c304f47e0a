"""The served devices on HTTP: the ASCOM Alpaca device API and its management API (issue 24).

`GET|PUT /api/v1/{device_type}/{number}/{member}` answers as Alpaca servers do: a JSON body with
Value, ErrorNumber, ErrorMessage and the transaction ids, HTTP 200 for a device's own error, 400
for a request that is not Alpaca's (an unknown device, a transaction id that is not a number);
the camera's image as ImageBytes when the client accepts it (JSON otherwise). The management
API lists the devices (`/management/v1/configureddevices`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from obsq.csc import __version__
from obsq.csc.alpaca.imagebytes import encode, error_body
from obsq.csc.served.devices import ServedError, ServedSite

#: ImageBytes element types: Int32.
INT32 = 2
#: Each served device type as ASCOM spells it.
ASCOM_NAMES = {"camera": "Camera", "covercalibrator": "CoverCalibrator", "switch": "Switch",
               "filterwheel": "FilterWheel", "dome": "Dome", "telescope": "Telescope"}  # fmt: skip
#: The largest request body read (form fields only).
MAX_FORM_BYTES = 64 * 1024


def make_app(site: ServedSite) -> Starlette:
    transactions = itertools.count(1)

    def answer(
        params: Mapping[str, str], value: Any = None, error: ServedError | None = None, extra: Mapping[str, Any] = {}
    ) -> JSONResponse:
        body: dict[str, Any] = {
            "ClientTransactionID": _client_transaction(params),
            "ServerTransactionID": next(transactions),
            "ErrorNumber": error.number if error else 0,
            "ErrorMessage": error.message if error else "",
        }
        if value is not None and error is None:
            body["Value"] = value
        return JSONResponse(body | dict(extra))

    async def device_call(request: Request) -> Response:
        kind, member = request.path_params["device_type"].lower(), request.path_params["member"].lower()
        device = site.devices.get((kind, _number(request.path_params["number"])))
        if device is None:
            known = ", ".join(f"{t}/{n}" for t, n in site.devices)
            return PlainTextResponse(f"no device {kind}/{request.path_params['number']} here; served: {known}", 400)
        params = await _parameters(request)
        if isinstance(params, Response):
            return params
        if kind == "camera" and member == "imagearray" and request.method == "GET":
            return image(request, params)
        try:
            value = device.get(member, params) if request.method == "GET" else device.put(member, params)
        except ServedError as fault:
            return answer(params, error=fault)
        return answer(params, value)

    def image(request: Request, params: Mapping[str, str]) -> Response:
        """The camera's image: ImageBytes where the client accepts it (errors too), JSON otherwise."""
        imagebytes = "application/imagebytes" in request.headers.get("accept", "")
        try:
            site.camera.get("camerastate", params)  # connected?
            pixels = site.camera.image_array()
        except ServedError as fault:
            if imagebytes:
                return Response(error_body(fault.number, fault.message), media_type="application/imagebytes")
            return answer(params, error=fault)
        if imagebytes:
            return Response(encode(pixels, transmission_type=INT32), media_type="application/imagebytes")
        return answer(params, pixels.T.tolist(), extra={"Type": INT32, "Rank": 2})

    async def api_versions(request: Request) -> Response:
        return JSONResponse({"Value": [1], "ClientTransactionID": 0, "ServerTransactionID": next(transactions),
                             "ErrorNumber": 0, "ErrorMessage": ""})  # fmt: skip

    async def description(request: Request) -> Response:
        value = {"ServerName": "obsq simulated observatory", "Manufacturer": "obsq",
                 "ManufacturerVersion": __version__, "Location": "simulation"}  # fmt: skip
        return JSONResponse({"Value": value, "ClientTransactionID": 0, "ServerTransactionID": next(transactions),
                             "ErrorNumber": 0, "ErrorMessage": ""})  # fmt: skip

    async def configured(request: Request) -> Response:
        value = [{"DeviceName": d.name, "DeviceType": ASCOM_NAMES[d.device_type], "DeviceNumber": d.number,
                  "UniqueID": f"obsq-{d.device_type}-{d.number}"} for d in site.devices.values()]  # fmt: skip
        return JSONResponse({"Value": value, "ClientTransactionID": 0, "ServerTransactionID": next(transactions),
                             "ErrorNumber": 0, "ErrorMessage": ""})  # fmt: skip

    routes = [
        Route("/api/v1/{device_type}/{number}/{member}", device_call, methods=["GET", "PUT"]),
        Route("/management/apiversions", api_versions),
        Route("/management/v1/description", description),
        Route("/management/v1/configureddevices", configured),
    ]
    return Starlette(routes=routes)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else -1


async def _parameters(request: Request) -> Mapping[str, str] | Response:
    """The request's parameters (query for GET, form for PUT), or the 400 answer to a request Alpaca does not make."""
    if request.method == "GET":
        params: Mapping[str, str] = dict(request.query_params)
    else:
        try:
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                return PlainTextResponse(f"the form is larger than {MAX_FORM_BYTES} bytes", 400)
            params = {k: str(v) for k, v in (await request.form()).items()}
        except ClientDisconnect:  # the client left before its form was whole: nobody to answer
            return PlainTextResponse("the client disconnected before its form was sent", 400)
    try:
        _client_transaction(params)
    except ValueError as exc:
        return PlainTextResponse(str(exc), 400)
    return params


def _client_transaction(params: Mapping[str, str]) -> int:
    for key, value in params.items():
        if key.lower() == "clienttransactionid":
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"ClientTransactionID {value!r} is not a number") from None
            return number if number >= 0 else 0
    return 0
