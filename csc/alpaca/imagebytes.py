"""Alpaca's ImageBytes: a camera's image as one binary HTTP body (`Accept: application/imagebytes`).

A 44-byte header of eleven little-endian int32 — MetadataVersion (1), ErrorNumber,
ClientTransactionID, ServerTransactionID, DataStart, ImageElementType, TransmissionElementType,
Rank, Dimension1, Dimension2, Dimension3 — then, from DataStart, either the pixels or, when
ErrorNumber is not 0, the error's message as UTF-8 text (a client that decodes that as pixels,
or calls `.decode` on a str as alpyca 3.1.3 does, hides the device's own error).

The pixels are the ImageArray in Alpaca's index order, [x][y] (and [x][y][plane] for a colour
image, Rank 3): the last index varies fastest, so the bytes are the transpose of a FITS image's
row order. `decode` returns the image as FITS holds it: rows (y) first, shape (ny, nx), or
(planes, ny, nx) for colour. The transmission type may be narrower than the element type (a
16-bit camera's pixels sent as UInt16 for an Int32 array): the values are the same.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: ASCOM ImageArrayElementTypes: the code, the numpy type it is sent as (little-endian).
ELEMENT_TYPES: dict[int, str] = {
    1: "<i2",  # Int16
    2: "<i4",  # Int32
    3: "<f8",  # Double
    4: "<f4",  # Single
    5: "<u8",  # UInt64
    6: "<u1",  # Byte
    7: "<i8",  # Int64
    8: "<u2",  # UInt16
    9: "<u4",  # UInt32
}
ELEMENT_NAMES = {1: "Int16", 2: "Int32", 3: "Double", 4: "Single", 5: "UInt64", 6: "Byte", 7: "Int64",
                 8: "UInt16", 9: "UInt32"}  # fmt: skip
HEADER = struct.Struct("<11i")
METADATA_VERSION = 1


class ImageBytesError(ValueError):
    """A body that is not a usable ImageBytes image; the message names the field and the rule."""


class DeviceReportedError(ImageBytesError):
    """The device answered with an Alpaca error instead of an image: its number and its own message."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"Alpaca error {number} (0x{number:X}): {message}")
        self.number = number
        self.message = message


@dataclass(frozen=True)
class ImageHeader:
    """The ImageBytes metadata."""

    version: int
    error_number: int
    client_transaction: int
    server_transaction: int
    data_start: int
    element_type: int
    transmission_type: int
    rank: int
    dimensions: tuple[int, int, int]


def read_header(body: bytes) -> ImageHeader:
    if len(body) < HEADER.size:
        raise ImageBytesError(f"ImageBytes body of {len(body)} bytes is shorter than its {HEADER.size}-byte header")
    version, error, client, server, start, element, transmission, rank, *dims = HEADER.unpack_from(body)
    header = ImageHeader(
        version, error, client, server, start, element, transmission, rank, (dims[0], dims[1], dims[2])
    )
    if header.version != METADATA_VERSION:
        raise ImageBytesError(f"ImageBytes MetadataVersion {header.version}: only version {METADATA_VERSION} is known")
    if not HEADER.size <= header.data_start <= len(body):
        raise ImageBytesError(f"ImageBytes DataStart {header.data_start} is outside the {len(body)}-byte body")
    return header


def decode(body: bytes) -> npt.NDArray[np.generic]:
    """The image of an ImageBytes body, as FITS holds it: (ny, nx), or (planes, ny, nx) for Rank 3.

    DeviceReportedError when the device sent its error instead; ImageBytesError for a body that
    does not add up (types, rank, dimensions against the bytes there are).
    """
    header = read_header(body)
    data = body[header.data_start :]
    if header.error_number != 0:
        message = data.decode("utf-8", errors="replace").strip() or "(no message)"
        raise DeviceReportedError(header.error_number, message)
    sent = ELEMENT_TYPES.get(header.transmission_type)
    if sent is None:
        raise ImageBytesError(f"ImageBytes TransmissionElementType {header.transmission_type} is not one of "
                              f"{', '.join(f'{k} ({v})' for k, v in ELEMENT_NAMES.items())}")  # fmt: skip
    if header.element_type not in ELEMENT_TYPES:
        raise ImageBytesError(f"ImageBytes ImageElementType {header.element_type} is not a known element type")
    if header.rank not in (2, 3):
        raise ImageBytesError(f"ImageBytes Rank {header.rank}: an image is Rank 2 (monochrome) or 3 (colour)")
    shape = header.dimensions[: header.rank]
    if any(d <= 0 for d in shape):
        raise ImageBytesError(f"ImageBytes dimensions {shape} for Rank {header.rank}: each must be at least 1")
    itemsize = np.dtype(sent).itemsize
    expected = int(np.prod(shape, dtype=np.int64)) * itemsize
    if len(data) != expected:
        raise ImageBytesError(f"ImageBytes of {' x '.join(map(str, shape))} {ELEMENT_NAMES[header.transmission_type]} "
                              f"needs {expected} bytes after DataStart; the body has {len(data)}")  # fmt: skip
    array = np.frombuffer(data, dtype=sent).reshape(shape)  # [x][y] or [x][y][plane]
    return array.T.copy() if header.rank == 2 else np.ascontiguousarray(array.transpose(2, 1, 0))


def encode(image: npt.NDArray[np.generic], *, transmission_type: int, element_type: int = 2) -> bytes:
    """An image as FITS holds it — (ny, nx) or (planes, ny, nx) — as an ImageBytes body (a server's side)."""
    sent = ELEMENT_TYPES.get(transmission_type)
    if sent is None:
        raise ImageBytesError(f"TransmissionElementType {transmission_type} is not a known element type")
    if image.ndim == 2:
        ordered, dims = image.T, (image.shape[1], image.shape[0], 0)
    elif image.ndim == 3:
        ordered, dims = image.transpose(2, 1, 0), (image.shape[2], image.shape[1], image.shape[0])
    else:
        raise ImageBytesError(f"an image has 2 or 3 dimensions, not {image.ndim}")
    header = HEADER.pack(METADATA_VERSION, 0, 0, 0, HEADER.size, element_type, transmission_type, image.ndim, *dims)
    return header + np.ascontiguousarray(ordered).astype(sent).tobytes()


def error_body(number: int, message: str) -> bytes:
    """An ImageBytes error body: the header with ErrorNumber, then the message as UTF-8."""
    return HEADER.pack(METADATA_VERSION, number, 0, 0, HEADER.size, 0, 0, 0, 0, 0, 0) + message.encode()
