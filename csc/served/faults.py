"""The faults obsq's served devices take (`obsq alpaca serve --inject`), each seen only through the protocol.

Names only, no imports: the command line lists them without loading the models.
"""

#: The injections the served site takes (each seen through the protocol only), by name.
SERVED_INJECTIONS = {
    "dome-drift": "the dome's encoder slips DEG (default 3) in its next move: flats dim, the encoder does not say why",
    "lamp-no-strike": "the next N (default 3) strikes give no light: CalibratorState stays NotReady",
    "lamp-stuck-on": "the lamp keeps its light when turned off: CalibratorState stays Ready",
    "coolant-flow": "the chiller's coolant flows at FRACTION (default 0.4) of nominal: the flow switch reads low",
    "filter-stuck": "the filter wheel's next move never arrives: Position stays -1",
    "readout-failure": "the next N (default 1) readouts fail: CameraState Error",
}
