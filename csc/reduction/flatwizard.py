"""The flat wizard's exposure search, pure: the exposure time that gives a target level (seed 004).

A model of the level (ADU above the bias) against the exposure time, refitted after every test
exposure: through the origin from one point, a least-squares line from two or more (its
intercept takes up a shutter's delay). The next exposure is the one the model puts on the
target, within the minimum and maximum exposure; the search ends when the last exposure is
within the tolerance of the target — or, naming why, when the light cannot reach it (the
maximum exposure falls short: lamp off, shutter closed, dome misaligned), when it is too bright
even at the minimum, or when the level does not rise with the exposure time at all.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Below this many ADU per second the level is not rising with the exposure: there is no light.
NO_LIGHT_ADU_S = 1.0


class FlatWizardError(ValueError):
    """The target cannot be reached; the message says why and what was seen."""


@dataclass(frozen=True)
class Search:
    """What the wizard aims at: a level (ADU above bias) within a relative tolerance, in [t_min, t_max] s."""

    target_adu: float
    tolerance: float
    t_min_s: float
    t_max_s: float

    def within(self, level_adu: float) -> bool:
        return abs(level_adu - self.target_adu) <= self.tolerance * self.target_adu


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(rate ADU/s, intercept ADU) of the level against the exposure time."""
    if len(points) == 1 or len({t for t, _ in points}) == 1:
        t, level = points[-1]
        return (level / t if t > 0 else 0.0), 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_l = sum(level for _, level in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    rate = sum((t - mean_t) * (level - mean_l) for t, level in points) / var
    return rate, mean_l - rate * mean_t


def next_exposure(search: Search, points: list[tuple[float, float]]) -> float | None:
    """The next exposure to take (s), or None when the last one is on target; FlatWizardError if unreachable."""
    if not points:
        raise ValueError("next_exposure needs at least one test exposure")
    t_last, level_last = points[-1]
    if search.within(level_last):
        return None
    rate, intercept = fit(points)
    if rate < NO_LIGHT_ADU_S:
        raise FlatWizardError(
            f"no light: the level does not rise with the exposure time ({rate:.2f} ADU/s; "
            f"{level_last:.0f} ADU at {t_last:g} s) — is the lamp on, its shutter open, the dome at the screen?"
        )
    wanted = (search.target_adu - intercept) / rate
    if wanted > search.t_max_s:
        if any(t >= search.t_max_s for t, _ in points):
            best = max(level for t, level in points if t >= search.t_max_s)
            raise FlatWizardError(
                f"the light cannot reach the target: {best:.0f} ADU at the maximum exposure {search.t_max_s:g} s, "
                f"{search.target_adu:.0f} ADU wanted (the model needs {wanted:.1f} s) — lamp too weak or off, "
                "or the dome misaligned with the screen"
            )
        return search.t_max_s
    if wanted < search.t_min_s:
        if any(t <= search.t_min_s for t, _ in points):
            least = min(level for t, level in points if t <= search.t_min_s)
            raise FlatWizardError(
                f"too bright: {least:.0f} ADU at the minimum exposure {search.t_min_s:g} s, "
                f"{search.target_adu:.0f} ADU wanted — lower the lamp power"
            )
        return search.t_min_s
    return wanted
