"""The detector, pure and numeric: geometry and a seeded physical model of every pixel.

Per amplifier: bias level, gain (e-/ADU), read noise (e-); per pixel: dark current with hot
pixels, response non-uniformity, vignetting and dust shadows (the flat-field pattern); per
exposure: Poisson noise in electrons, a full well near 123,000 ADU, cosmic rays in proportion
to the dark time, read noise, and the overscan (bias plus read noise only).

Everything fixed (amplifier parameters, the flat pattern, hot pixels) derives from `seed`;
each exposure's noise derives from (seed, exposure number), so files are reproducible.
No I/O, no clock: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
RawArray = npt.NDArray[np.int32]

#: Largest value of the 18-bit converter.
ADC_MAX = (1 << 18) - 1


@dataclass(frozen=True)
class Geometry:
    """Amplifier layout: `rows` x `cols` amplifiers, each `nx` x `ny` imaging pixels plus overscan."""

    name: str
    rows: int
    cols: int
    nx: int
    ny: int
    serial_overscan: int
    parallel_overscan: int

    @property
    def n_amps(self) -> int:
        return self.rows * self.cols

    @property
    def raw_shape(self) -> tuple[int, int]:
        """(y, x) of one amplifier's raw array: imaging plus overscans."""
        return (self.ny + self.parallel_overscan, self.nx + self.serial_overscan)

    @property
    def detector_shape(self) -> tuple[int, int]:
        return (self.rows * self.ny, self.cols * self.nx)

    def amp_origin(self, amp: int) -> tuple[int, int]:
        """(y0, x0) of amplifier `amp`'s imaging area on the assembled detector."""
        return (amp // self.cols) * self.ny, (amp % self.cols) * self.nx

    def datasec(self) -> str:
        return f"[1:{self.nx},1:{self.ny}]"

    def biassec(self) -> str:
        """The serial overscan, FITS 1-based inclusive [x1:x2,y1:y2]."""
        return f"[{self.nx + 1}:{self.nx + self.serial_overscan},1:{self.ny}]"

    def detsec(self, amp: int) -> str:
        y0, x0 = self.amp_origin(amp)
        return f"[{x0 + 1}:{x0 + self.nx},{y0 + 1}:{y0 + self.ny}]"


#: The default keeps a weekly run fast on a laptop; "latiss" is the full ITL-like geometry.
GEOMETRIES = {
    "small": Geometry("small", rows=2, cols=2, nx=256, ny=256, serial_overscan=32, parallel_overscan=16),
    "latiss": Geometry("latiss", rows=2, cols=8, nx=509, ny=2000, serial_overscan=64, parallel_overscan=48),
}


@dataclass(frozen=True)
class Amplifier:
    """Truth of one amplifier."""

    bias_adu: float
    gain_e_per_adu: float
    read_noise_e: float

    @property
    def full_well_e(self) -> float:
        """Electrons at which a pixel saturates: about 123,000 ADU above bias."""
        return 123_000.0 * self.gain_e_per_adu


@dataclass
class DetectorModel:
    """The detector's truth and how it turns electrons into raw counts."""

    geometry: Geometry
    seed: int = 1
    dark_current_e_s: float = 0.003
    hot_pixel_fraction: float = 5e-4
    cosmic_rays_per_pixel_s: float = 2.5e-6
    prnu_sigma: float = 0.01
    vignetting_edge: float = 0.10
    amplifiers: list[Amplifier] = field(init=False)
    flat_pattern: Array = field(init=False, repr=False)
    dark_map_e_s: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0])
        self.amplifiers = [
            Amplifier(
                bias_adu=float(15_000 + 250 * i + rng.uniform(-100, 100)),
                gain_e_per_adu=float(rng.uniform(0.92, 1.08)),
                read_noise_e=float(rng.uniform(5.5, 8.0)),
            )
            for i in range(self.geometry.n_amps)
        ]
        self.flat_pattern = self._make_flat_pattern(rng)
        self.dark_map_e_s = self._make_dark_map(rng)

    # -- fixed patterns ------------------------------------------------------------------

    def _make_flat_pattern(self, rng: np.random.Generator) -> Array:
        """Vignetting x pixel response non-uniformity x dust shadows, mean about 1."""
        ny, nx = self.geometry.detector_shape
        y, x = np.ogrid[0:ny, 0:nx]
        r2 = ((x - nx / 2) / (nx / 2)) ** 2 + ((y - ny / 2) / (ny / 2)) ** 2
        pattern = 1.0 - self.vignetting_edge * r2 / 2.0
        pattern *= rng.normal(1.0, self.prnu_sigma, size=(ny, nx))
        scale = min(nx, ny)
        for _ in range(6):
            cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
            radius = rng.uniform(0.02, 0.05) * scale
            depth = rng.uniform(0.03, 0.08)
            d = np.hypot(x - cx, y - cy)
            ring = np.exp(-(((d - radius) / (0.25 * radius)) ** 2))  # a donut, as out-of-focus dust
            pattern *= 1.0 - depth * ring
        return pattern

    def _make_dark_map(self, rng: np.random.Generator) -> Array:
        shape = self.geometry.detector_shape
        dark = np.full(shape, self.dark_current_e_s)
        hot = rng.random(shape) < self.hot_pixel_fraction
        dark[hot] = rng.uniform(0.5, 20.0, size=int(hot.sum()))
        return dark

    def amp_slice(self, amp: int) -> tuple[slice, slice]:
        y0, x0 = self.geometry.amp_origin(amp)
        return slice(y0, y0 + self.geometry.ny), slice(x0, x0 + self.geometry.nx)

    # -- predictions ---------------------------------------------------------------------

    def expected_signal_adu(self, flux_e_s: float, exptime_s: float) -> npt.NDArray[np.float64]:
        """Mean illumination signal (ADU, bias and dark excluded) each amplifier should record."""
        return np.array(
            [
                flux_e_s * exptime_s * float(self.flat_pattern[self.amp_slice(i)].mean()) / amp.gain_e_per_adu
                for i, amp in enumerate(self.amplifiers)
            ]
        )

    # -- an exposure ---------------------------------------------------------------------

    def expose(
        self, exposure: int, flux_e_s: float, exptime_s: float, darktime_s: float, scene_e_s: Array | None = None
    ) -> list[RawArray]:
        """Raw arrays (one per amplifier, overscan included) of exposure number `exposure`.

        `flux_e_s` is the illumination (electrons/s/pixel before the flat pattern), `scene_e_s`
        an image added to it (the stars; detector-shaped);
        `exptime_s` the open-shutter time; `darktime_s` the time charge accumulates.
        """
        rng = np.random.default_rng([self.seed, 1, exposure])
        electrons = self.dark_map_e_s * darktime_s
        if flux_e_s > 0 and exptime_s > 0:
            electrons = electrons + self.flat_pattern * (flux_e_s * exptime_s)
        if scene_e_s is not None and exptime_s > 0:
            electrons = electrons + self.flat_pattern * (scene_e_s * exptime_s)
        electrons = rng.poisson(electrons).astype(np.float64)
        self._add_cosmic_rays(rng, electrons, darktime_s)
        g = self.geometry
        raws = []
        for i, amp in enumerate(self.amplifiers):
            raw = np.empty(g.raw_shape, dtype=np.float64)
            imaging = np.minimum(electrons[self.amp_slice(i)], amp.full_well_e)
            raw[: g.ny, : g.nx] = imaging / amp.gain_e_per_adu
            raw[g.ny :, :] = 0.0
            raw[:, g.nx :] = 0.0
            raw += amp.bias_adu + rng.normal(0.0, amp.read_noise_e / amp.gain_e_per_adu, size=g.raw_shape)
            raws.append(np.clip(np.rint(raw), 0, ADC_MAX).astype(np.int32))
        return raws

    def _add_cosmic_rays(self, rng: np.random.Generator, electrons: Array, darktime_s: float) -> None:
        ny, nx = electrons.shape
        count = rng.poisson(self.cosmic_rays_per_pixel_s * ny * nx * darktime_s)
        for _ in range(int(count)):
            length = int(rng.integers(2, 12))
            y, x = rng.uniform(0, ny), rng.uniform(0, nx)
            angle = rng.uniform(0, np.pi)
            deposit = rng.uniform(500, 5000) / length
            for step in range(length):
                py, px = int(y + step * np.sin(angle)), int(x + step * np.cos(angle))
                if 0 <= py < ny and 0 <= px < nx:
                    electrons[py, px] += deposit
