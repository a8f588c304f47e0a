"""ATWhiteLight: the white-light calibration lamp with its chiller and shutter."""
