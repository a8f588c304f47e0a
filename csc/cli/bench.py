"""`obsq bench`: benchmarks, each against a baseline measured in the same run."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, positive_float, run_async


def frame_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT`, each 1 to 16384."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not (0 < int(width) <= 16384 >= int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, each 1 to 16384 (e.g. 1024x1024)")
    return int(width), int(height)


def add(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="benchmarks", description="Benchmarks a site can run against its own machine.")
    what = p.add_subparsers(dest="action", required=True, metavar="WHAT")
    q = what.add_parser(
        "bus",
        help="command round trip and event rate vs bare aiomqtt",
        description="Framework round trip and event rate against bare aiomqtt, on Mosquitto and the embedded "
        "broker in one run (or only on --broker).",
    )
    q.add_argument("--count", type=int, default=2000, help="round trips per measurement (default %(default)s)")
    q.add_argument("--events", type=int, default=5000, help="events per throughput run (default %(default)s)")
    q.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON to this file")
    add_connection_options(q)
    q = what.add_parser(
        "fits",
        help="time to write one raw file, small and full-size detector, vs plain astropy",
        description="Median time per image of the camera's atomic FITS write (fsync, checksum, rename) against a "
        "plain astropy.io.fits write of the same arrays, interleaved, for the small and the LATISS-size detector.",
    )
    q.add_argument(
        "--repeats", type=int, default=5, help="full-size images per measurement (small: 4x; default %(default)s)"
    )
    q.add_argument("--dir", type=Path, default=None, help="where to write (default: the system temporary folder)")
    q = what.add_parser(
        "queue",
        help="the queue's gap between scripts and its add time",
        description="Queue N trivial scripts (each its own process), then measure DONE -> next RUNNING and "
        "add -> CONFIGURED, against a bus command round trip measured in the same run.",
    )
    q.add_argument("--scripts", type=int, default=50, help="how many scripts (default %(default)s)")
    q = what.add_parser(
        "combine",
        help="clipped-mean master of N frames from disk, vs ccdproc and the read-and-average floor",
        description="Time and peak memory of the banded clipped mean (1 and 3 iterations) on N float32 frames, "
        "against ccdproc.combine and a plain read-and-average of the same files, each in its own process.",
    )
    q.add_argument("--frames", type=int, default=20, help="how many frames (default %(default)s)")
    q.add_argument("--size", type=int, default=4096, help="frame side in pixels (default %(default)s)")
    q.add_argument("--dir", default=None, help="where the frames are written and kept (default: temporary folder)")
    q.add_argument("--no-ccdproc", action="store_true", help="skip ccdproc (it needs ~11 GB at 4096x4096)")
    q.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON to this file")
    q.add_argument(
        "--repeat", type=int, default=3, help="runs of each quick case, the fastest kept (default %(default)s)"
    )
    q = what.add_parser(
        "reduce",
        help="the whole obsq reduce bias --verify on N frames, vs ccdproc.combine",
        description="Time and peak memory of the user's command, obsq reduce bias FOLDER --repo --verify (survey, "
        "combine, master, verification), against ccdproc.combine on the same N float32 frames, each in its own "
        "process. The issue's two cases: --frames 20 --size 4096 (ccdproc needs ~11 GB) and --frames 1000 --size 512.",
    )  # fmt: skip
    q.add_argument("--frames", type=int, default=20, help="how many frames (default %(default)s)")
    q.add_argument("--size", type=int, default=4096, help="frame side in pixels (default %(default)s)")
    q.add_argument("--dir", default=None, help="where the frames are written and kept (default: temporary folder)")
    q.add_argument("--no-ccdproc", action="store_true", help="skip ccdproc")
    q.add_argument("--repeat", type=int, default=2, help="runs of obsq, the fastest kept (default %(default)s)")
    q.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON to this file")
    q = what.add_parser(
        "startup",
        help="obsq --help, obsq csc list and the processes' imports vs python -c pass",
        description="Start-up time of the command line and of component, script and worker processes, interleaved "
        "with a bare `python -c pass`; exit status 1 if `obsq --help` or `obsq csc list` is over 12x.",
    )
    q.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default %(default)s)")
    q.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON to this file")
    q = what.add_parser(
        "alpaca",
        help="the camera service's time an image on an Alpaca camera, vs the protocol alone",
        description="Darks through ATCamera on its Alpaca driver (events, keywords, FITS, registry) against the "
        "bare protocol (start, poll, ImageBytes) on the same camera, interleaved: a site's own (--url) or "
        "alpaca-simulators' camera started on loopback.",
    )  # fmt: skip
    q.add_argument("--url", help="the camera, alpaca://HOST:PORT/camera/N (default: alpaca-simulators' camera)")
    q.add_argument("--images", type=int, default=10, help="darks of each kind (default %(default)s)")
    q.add_argument("--exptime", type=positive_float, default=1.0, help="seconds a dark (default %(default)s)")
    q.add_argument("--size", type=frame_size, default=(128, 96), metavar="WxH",
                   help="the simulator camera's pixels, e.g. 1024x1024 (default 128x96)")  # fmt: skip
    q = what.add_parser(
        "weekly",
        help="the main job once, and where its wall time went",
        description="Run obsq weekly on a private broker and the simulated observatory, then itemise its wall time: "
        "bring-up, adding the blocks, simulated waits, FITS writes, reduction, the rest.",
    )
    q.add_argument("--speed", type=positive_float, default=600.0, help="clock speed (default 600)")
    q.add_argument("--dir", type=Path, default=None, help="where the run's data goes (default: temporary folder)")
    q.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON to this file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "bus":
        from obsq.csc.bench.bus import BusBenchOptions, run_bus_benchmark

        given = connection(args)
        options = BusBenchOptions(given.url() if given.given else None, args.count, args.events, args.json_out)
        return run_async(run_bus_benchmark(options))
    if args.action == "fits":
        from obsq.csc.bench.fits import FitsBenchOptions, run_fits_benchmark

        return run_async(run_fits_benchmark(FitsBenchOptions(args.repeats, args.dir)))
    if args.action == "queue":
        from obsq.csc.bench.queue import QueueBenchOptions, run_queue_benchmark

        return run_async(run_queue_benchmark(QueueBenchOptions(args.scripts)))
    if args.action in ("combine", "reduce"):
        return _run_reduction_benchmark(args)
    if args.action in ("alpaca", "weekly"):
        return _run_device_benchmark(args)
    from obsq.csc.bench.startup import StartupBenchOptions, run_startup_benchmark

    return run_startup_benchmark(StartupBenchOptions(args.rounds, args.json_out))


def _run_reduction_benchmark(args: argparse.Namespace) -> int:
    given = (args.frames, args.size, args.dir, not args.no_ccdproc, args.json_out, args.repeat)
    if args.action == "combine":
        from obsq.csc.bench.combine import CombineBenchOptions, run_combine_benchmark

        return run_combine_benchmark(CombineBenchOptions(*given))
    from obsq.csc.bench.reduce import ReduceBenchOptions, run_reduce_benchmark

    return run_reduce_benchmark(ReduceBenchOptions(*given))


def _run_device_benchmark(args: argparse.Namespace) -> int:
    """`obsq bench alpaca` and `obsq bench weekly`: a camera's images, the whole main job."""
    if args.action == "alpaca":
        from obsq.csc.bench.alpaca import AlpacaBenchOptions, run_alpaca_benchmark

        return run_async(run_alpaca_benchmark(AlpacaBenchOptions(args.url, args.images, args.exptime, args.size)))
    from obsq.csc.bench.weekly import WeeklyBenchOptions, run_weekly_benchmark

    return run_async(run_weekly_benchmark(WeeklyBenchOptions(args.speed, args.dir)))
