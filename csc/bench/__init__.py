"""`obsq bench`: benchmarks a site can run on its own machine, each against a baseline measured in the same run.

- `bus.py`: command round trip and event rate against bare aiomqtt (`bare.py`);
- `fits.py`: one raw file's atomic write against a plain astropy write;
- `queue.py`: the queue's gap between scripts and its add time against a bus round trip;
- `combine.py`: a clipped-mean master against ccdproc and the read-and-average floor;
- `startup.py`: `obsq --help`, `obsq csc list` and the processes' imports against `python -c pass`.
"""
