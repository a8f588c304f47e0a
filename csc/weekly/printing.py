"""How `obsq weekly` shows a run: a progress line on each change, then the summary."""

from __future__ import annotations

from typing import Any

from obsq.csc.weekly.follow import Progress


def progress_line(p: Progress) -> str:
    where = "idle"
    if p.path:
        block = f"{p.block} " if p.block else ""
        where = f"{block}[{p.position}/{p.scripts}] {p.path}: {p.step}"
    return (
        f"{where} | images {p.images_done}/{p.images_total} | left ~{p.left_s:,.0f} s simulated "
        f"({p.left_real_s:,.1f} s real)"
    )


class ConsoleView:
    """Prints the run to stdout: each distinct progress line once, and the summary at the end."""

    def __init__(self) -> None:
        self._last_line = ""

    def line(self, text: str) -> None:
        print(text, flush=True)

    def queued(self, block: str, indices: list[int]) -> None:
        self.line(f"queued {block}: scripts {indices[0]}..{indices[-1]}")

    def progress(self, progress: Progress) -> None:
        line = progress_line(progress)
        if line != self._last_line:
            self.line(line)
            self._last_line = line

    def summary(self, summary: dict[str, Any]) -> None:
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
        certified = "certified now" if m["certified"] else "not certified"
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
