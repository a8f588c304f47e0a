"""ATSpectrograph: LATISS filter and disperser wheels."""
