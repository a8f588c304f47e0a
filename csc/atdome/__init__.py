"""ATDome: the dome azimuth drive, with encoder drift and homing."""
