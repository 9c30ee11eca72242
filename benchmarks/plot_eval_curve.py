"""Plot F (hmean) against training step from the `eval` events of one or more runs' log.jsonl.

Draws with OpenCV (already a dependency) so that no plotting library is needed, and prints the
same points as a Markdown table for the docs. A run's starting point (step 0, e.g. the imported
model's F measured with `sdet eval`) can be given with --start, since the trainer evaluates only
every `train.eval_every` steps.

    python benchmarks/plot_eval_curve.py runs/a/log.jsonl runs/b/log.jsonl \
        --label a --label b --start 0.4493 --out docs/img/curve.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

Point = Tuple[int, float, float, float]  # step, precision, recall, hmean
COLOURS = [(180, 90, 20), (30, 120, 230), (40, 160, 40), (40, 40, 200), (150, 60, 150)]  # BGR


def read_eval_points(log_path: Path) -> List[Point]:
    """Eval events in step order; a resumed run that re-evaluated a step keeps the last value."""
    by_step: Dict[int, Point] = {}
    for line in log_path.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("event") == "eval":
            step = int(event["step"])
            by_step[step] = (step, event["precision"], event["recall"], event["hmean"])
    return [by_step[step] for step in sorted(by_step)]


def draw_curves(curves: Sequence[Tuple[str, List[Tuple[int, float]]]], out: Path,
                reference: Optional[Tuple[str, float]] = None, size: Tuple[int, int] = (900, 540)) -> None:
    width, height = size
    left, right, top, bottom = 80, 30, 30, 70
    canvas = np.full((height, width, 3), 255, np.uint8)
    steps = [s for _, pts in curves for s, _ in pts]
    values = [f for _, pts in curves for _, f in pts] + ([reference[1]] if reference else [])
    max_step = max(steps) if steps else 1
    low = max(0.0, np.floor(min(values) * 20) / 20 - 0.05)
    high = min(1.0, np.ceil(max(values) * 20) / 20 + 0.05)

    def to_px(step: float, value: float) -> Tuple[int, int]:
        x = left + (width - left - right) * step / max_step
        y = height - bottom - (height - top - bottom) * (value - low) / (high - low)
        return int(round(x)), int(round(y))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for tick in np.arange(low, high + 1e-9, 0.05):
        _, y = to_px(0, tick)
        cv2.line(canvas, (left, y), (width - right, y), (225, 225, 225), 1)
        cv2.putText(canvas, f"{tick:.2f}", (10, y + 5), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    for tick in np.linspace(0, max_step, 6):
        x, _ = to_px(tick, low)
        cv2.line(canvas, (x, height - bottom), (x, height - bottom + 5), (60, 60, 60), 1)
        cv2.putText(canvas, f"{int(tick)}", (x - 15, height - bottom + 22), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (60, 60, 60), 1)
    cv2.putText(canvas, "training step", (width // 2 - 50, height - 20), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "F", (left - 22, top - 10), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    if reference:
        _, y = to_px(0, reference[1])
        for x in range(left, width - right, 12):
            cv2.line(canvas, (x, y), (min(x + 6, width - right), y), (120, 120, 120), 1)
        cv2.putText(canvas, f"{reference[0]} {reference[1]:.4f}", (left + 8, y - 6), font, 0.45,
                    (90, 90, 90), 1, cv2.LINE_AA)
    for index, (label, points) in enumerate(curves):
        colour = COLOURS[index % len(COLOURS)]
        pixels = [to_px(s, f) for s, f in points]
        for a, b in zip(pixels, pixels[1:]):
            cv2.line(canvas, a, b, colour, 2, cv2.LINE_AA)
        for p in pixels:
            cv2.circle(canvas, p, 4, colour, -1, cv2.LINE_AA)
        cv2.putText(canvas, label, (width - right - 260, top + 22 + 20 * index), font, 0.5, colour, 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise SystemExit(f"error: cannot write {out}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path, help="log.jsonl files")
    parser.add_argument("--label", action="append", default=[], help="one per log (default: the run folder)")
    parser.add_argument("--start", type=float, default=None, help="F at step 0, shared by every run")
    parser.add_argument("--reference", default=None, help="NAME=F drawn as a dashed line (a target)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.logs):
        raise SystemExit("error: give one --label per log file")
    labels = args.label or [log.parent.name for log in args.logs]
    curves = []
    print("| run | step | P | R | F |\n|---|---:|---:|---:|---:|")
    for label, log in zip(labels, args.logs):
        if not log.is_file():
            raise SystemExit(f"error: {log}: no such file")
        points = read_eval_points(log)
        if not points:
            raise SystemExit(f"error: {log}: no eval events")
        for step, p, r, f in points:
            print(f"| {label} | {step} | {p:.4f} | {r:.4f} | {f:.4f} |")
        curve = [(step, f) for step, _, _, f in points]
        if args.start is not None:
            curve.insert(0, (0, args.start))
        curves.append((label, curve))
    reference = None
    if args.reference:
        name, _, value = args.reference.partition("=")
        reference = (name, float(value))
    draw_curves(curves, args.out, reference)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
