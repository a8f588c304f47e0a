"""The bus: a narrow publish/subscribe interface (`base.py`) and its implementations.

`MemoryBus` (`memory.py`, unit tests) and `MqttBus` (`mqtt.py`, every real deployment; the
only module that imports aiomqtt) pass the same conformance suite,
`obsq.csc.testing.bus_conformance`. `url.py` parses broker addresses, `brokers.py` starts
brokers. Nothing is imported here, so reading a broker address costs no transport import.
"""
