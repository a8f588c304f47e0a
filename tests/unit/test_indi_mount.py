"""The INDI mount's astronomy: obsq's alt/az as a telescope's equatorial coordinates and back."""

from __future__ import annotations

import pytest

from obsq.csc.atmcs.indi import equatorial, horizontal, sidereal_hours


def test_the_sidereal_time_at_greenwich_at_j2000_is_18_697_h() -> None:
    assert sidereal_hours(946728000.0, 0.0) == pytest.approx(18.697374558, abs=1e-6)  # 2000-01-01T12:00 UTC
    assert sidereal_hours(946728000.0, -70.7) == pytest.approx((18.697374558 - 70.7 / 15) % 24, abs=1e-6)


@pytest.mark.parametrize(("azimuth", "altitude", "latitude"), [
    (188.7, 39.0, -30.24), (3.0, 80.0, -30.24), (90.0, 10.0, 0.0), (270.0, 45.0, 52.0), (0.0, 20.0, 19.8),
])  # fmt: skip
def test_alt_az_goes_to_ra_dec_and_back(azimuth: float, altitude: float, latitude: float) -> None:
    lst = 7.25
    ra, dec = equatorial(azimuth, altitude, latitude, lst)
    assert 0.0 <= ra < 24.0
    assert -90.0 <= dec <= 90.0
    back = horizontal(ra, dec, latitude, lst)
    assert back == pytest.approx((azimuth, altitude), abs=1e-9)


def test_the_zenith_is_the_latitude_at_the_sidereal_time_and_south_is_the_meridian() -> None:
    assert equatorial(0.0, 90.0, -30.24, 5.5) == pytest.approx((5.5, -30.24))
    ra, dec = equatorial(180.0, 40.0, -30.24, 5.5)  # due south from Cerro Pachón: on the meridian
    assert ra == pytest.approx(5.5)
    assert dec == pytest.approx(-30.24 - 50.0)
