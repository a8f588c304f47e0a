"""Alpaca's ImageBytes decoded as FITS holds an image; a device's error is its own message (issue 24)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from obsq.csc.alpaca.imagebytes import (
    HEADER,
    DeviceReportedError,
    ImageBytesError,
    decode,
    encode,
    error_body,
)


def simulator_bytes(image_yx: np.ndarray) -> bytes:
    """What alpaca-simulators 1.3.2's camera sends (its bytes_generator, re-typed here from its published source):
    Int32 elements sent as UInt16, Dimension1 = numx, the [x][y] array's bytes (`image_array.T.tobytes()`)."""
    numy, numx = image_yx.shape
    head = b"".join(v.to_bytes(4, "little") for v in (1, 0, 0, 0, 44, 2, 8, 2, numx, numy, 0))
    return head + image_yx.astype("<u2").T.tobytes()


def test_a_frame_as_the_third_party_simulator_sends_it_comes_out_in_fits_row_order() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 65535, size=(30, 50)).astype(np.uint16)  # 30 rows (y), 50 columns (x)
    decoded = decode(simulator_bytes(image))
    assert decoded.shape == (30, 50)
    assert np.array_equal(decoded, image)
    assert decoded[0, 1] == image[0, 1]  # x is the column: no transpose left over


def test_encode_and_decode_agree_for_every_element_type_and_colour() -> None:
    rng = np.random.default_rng(4)
    mono = rng.integers(0, 200, size=(7, 11))
    for transmission in (1, 2, 3, 4, 5, 6, 7, 8, 9):
        assert np.array_equal(decode(encode(mono, transmission_type=transmission)), mono), transmission
    colour = rng.integers(0, 200, size=(3, 7, 11))  # (planes, ny, nx)
    assert np.array_equal(decode(encode(colour, transmission_type=8)), colour)


def test_a_device_error_is_the_devices_own_message() -> None:
    with pytest.raises(DeviceReportedError, match=r"Alpaca error 1031 \(0x407\): the camera is not connected") as err:
        decode(error_body(0x407, "the camera is not connected"))
    assert err.value.number == 0x407


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\x01\x00", "shorter than its 44-byte header"),
        (HEADER.pack(2, 0, 0, 0, 44, 2, 8, 2, 1, 1, 0) + b"\x00\x00", "MetadataVersion 2"),
        (HEADER.pack(1, 0, 0, 0, 4000, 2, 8, 2, 1, 1, 0), "DataStart 4000 is outside"),
        (HEADER.pack(1, 0, 0, 0, 44, 2, 12, 2, 1, 1, 0) + b"\x00\x00", "TransmissionElementType 12"),
        (HEADER.pack(1, 0, 0, 0, 44, 2, 8, 4, 1, 1, 1) + b"\x00\x00", "Rank 4"),
        (HEADER.pack(1, 0, 0, 0, 44, 2, 8, 2, 0, 5, 0), "each must be at least 1"),
        (HEADER.pack(1, 0, 0, 0, 44, 2, 8, 2, 4, 4, 0) + b"\x00" * 30, "needs 32 bytes after DataStart"),
    ],
)
def test_a_body_that_does_not_add_up_is_named(body: bytes, says: str) -> None:
    with pytest.raises(ImageBytesError, match=says):
        decode(body)
    assert struct.calcsize("<11i") == HEADER.size == 44
