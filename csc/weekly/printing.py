"""How `obsq weekly` shows a run: a progress line on each change, then the summary.

On a terminal the progress line is rewritten in place; into a file or a pipe each change is a
line of its own, so a log keeps the whole run.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any, TextIO

from obsq.csc.weekly.follow import Progress


def progress_line(p: Progress) -> str:
    where = f"{p.block} {p.step}" if p.block else p.step
    if p.path:
        block = f"{p.block} " if p.block else ""
        where = f"{block}[{p.position}/{p.scripts}] {p.path}: {p.step}"
    return (
        f"{where} | images {p.images_done}/{p.images_total} | left ~{p.left_s:,.0f} s simulated "
        f"({p.left_real_s:,.1f} s real)"
    )


class ConsoleView:
    """Prints the run: each distinct progress line once (in place on a terminal), and the summary at the end."""

    def __init__(self, out: TextIO | None = None, *, in_place: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.in_place = self.out.isatty() if in_place is None else in_place
        self._last_line = ""
        self._open = False  # a progress line is on the screen without its newline

    def line(self, text: str) -> None:
        if self._open:
            self.out.write("\n")
            self._open = False
        print(text, file=self.out, flush=True)

    def queued(self, block: str, indices: list[int]) -> None:
        self.line(f"queued {block}: scripts {indices[0]}..{indices[-1]}")

    def progress(self, progress: Progress) -> None:
        line = progress_line(progress)
        if line == self._last_line:
            return
        self._last_line = line
        if not self.in_place:
            self.line(line)
            return
        width = shutil.get_terminal_size().columns - 1
        shown = line if len(line) <= width else line[: width - 1] + "…"
        self.out.write("\r\033[K" + shown)  # back to the line's start, clear it, write
        self.out.flush()
        self._open = True

    def summary(self, summary: dict[str, Any]) -> None:
        if self._open:
            self.out.write("\n")
            self._open = False
        print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    print("\nimages (type, filter~grating: exposure times x count)")
    by_set: dict[tuple[str, str, str], list[str]] = {}
    for row in summary["images"]:
        by_set.setdefault((row["imgtype"], row["filter"], row["grating"]), []).append(
            f"{row['exptime']:g}s x{row['count']}"
        )
    for (imgtype, filter_, grating), times in by_set.items():
        shown = (
            ", ".join(times)
            if len(times) <= 6
            else f"{len(times)} exposure times, {sum(int(t.split('x')[1]) for t in times)} images"
        )
        print(f"  {imgtype:<5} {filter_}~{grating}: {shown}")
    print(f"  total: {sum(r['count'] for r in summary['images'])} images")
    print("\nscripts")
    for script in summary["scripts"]:
        reason = f" ({script['reason']})" if script["reason"] and script["state"] != "DONE" else ""
        print(f"  {script['index']} {script['block']:<9} {script['path']:<45} {script['state']}{reason}")
    lamp = summary["lamp"]
    print(f"\nATWhiteLight {lamp['summaryState']}, lamp {lamp['lamp']}")
    for note in summary.get("processing", []):
        print(f"processing: {note}")
    results = summary.get("calibration")
    if results is not None:
        print_calibration(results)
        print(f"report: {summary['report']}")
    print(f"{summary['outcome']}; wall time {summary['wall_time_s']:.1f} s; summary written to {summary['file']}")


def print_calibration(results: dict[str, Any]) -> None:
    print("\nverification (passed/run)")
    for kind, names in sorted(results["verification"].items()):
        cells = ", ".join(f"{name} {c['passed']}/{c['run']}" for name, c in sorted(names.items()))
        print(f"  {kind:<13} {cells}")
    for failure in results["failures"][:10]:
        print(
            f"  FAILED {failure['kind']} {failure['name']} {failure['amp']} {failure['exposure']}: {failure['detail']}"
        )
    for job in results["jobs"]["failed"]:
        print(f"  FAILED job {job['id']} ({job['pipeline']}): {job['result']}")
    print("\nmasters")
    for m in results["masters"]:
        certified = m.get("certification") or ("certified" if m["certified"] else "not certified")
        print(
            f"  {m['id']:>3} {m['type']:<4} v{m['version']:<2} {m['filter'] or '-':<22} {m['verified']:<12} {certified}"
        )
    ptc = results["ptc"]
    if ptc is not None:
        print(f"\nPTC (product {ptc['product']}, {ptc['n_inputs']} flats)")
        print("  amp  gain e-/ADU  vs nominal  read noise e-  turnoff ADU")
        for name, a in sorted(ptc["amps"].items()):
            ratio = f"{a['gain_ratio'] - 1:+.2%}" if a["gain_ratio"] is not None else "n/a"
            print(f"  {name}  {a['gain']:.4f}       {ratio:>8}    {a['noise_e']:.2f}          {a['turnoff_adu']:.0f}")
        if not ptc["covers_range"]:
            print("  the PTC flats stop below the turnoff (the upper half of the range never reached): not a PASS")
    print(f"\ncalibration {'PASSED' if results['passed'] else 'FAILED'}")
    if results.get("recovery"):
        print("recovery (the flats show the dome and the white light misaligned):")
        for number, step in enumerate(results["recovery"], 1):
            print(f"  {number}. {step}")
