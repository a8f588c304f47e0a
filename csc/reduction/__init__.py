"""Pure, synchronous numeric code for calibration: ISR, combine, verify, PTC.

No asyncio, no bus, no clock, no paths (import-linter checks it): arrays in, arrays out.
Masks, not NaNs; rejection and combination are separate steps.
"""
