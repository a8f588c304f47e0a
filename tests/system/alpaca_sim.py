"""alpaca-simulators (the third-party Python Alpaca simulators, MIT) as a process of the test's own.

It runs on a free loopback port from a configuration the test writes (only the devices asked
for), so that obsq's Alpaca drivers are tried against a server obsq did not make. The process
is the benchmark's (`obsq bench alpaca`); here it skips where the package is not installed.
"""

from __future__ import annotations

import pytest

from obsq.csc.bench.alpaca import AlpacaSimulatorsProcess


class AlpacaSimulators(AlpacaSimulatorsProcess):
    """alpaca-simulators for a test: skipped where it is not installed (it is a test extra)."""

    def start(self) -> None:
        pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
        super().start()
