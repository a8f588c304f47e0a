"""`obsq weekly`: the LATISS weekly calibration as a site runs it.

BLOCK-309 (setup), BLOCK-295 (the BIAS/DARK/FLAT sets and the PTC flats), BLOCK-310
(shutdown), queued on ScriptQueue:2 and followed to the end; then the PTC through OCPS:1, a
summary and a report. `run.py` orchestrates, `follow.py` follows the queue, `summary.py`
gathers what the run produced, `printing.py` shows it, `report.py` writes the HTML page.
"""
