"""`sdet compare`: train several variants of one config over several seeds, then tabulate.

Each (variant, seed) run lives in OUT/<variant>/seed<k>/ and writes result.json when it
has been trained and evaluated, so an interrupted comparison resumes where it stopped:
finished runs are skipped and an unfinished one continues from its last.pt. A finished run
is reused only under the overrides it was trained with (bar where and how fast it ran).
Every run is scored with its final weights, never with a checkpoint chosen on the split it is
scored on, and the variants are paired with the reference by seed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from sdet.config import first_difference, flatten_dotted, load_config, parse_overrides
from sdet.errors import UserError
from sdet.experiments.stats import summarize

METRICS = ("precision", "recall", "hmean")


@dataclass
class Variant:
    name: str
    overrides: List[str]


def parse_seeds(text: str) -> List[int]:
    """'0,1,2' -> [0, 1, 2]; anything else is a one-line error."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise UserError(f"--seeds expects comma-separated integers, got '{text}'", "<command line>")
    return seeds


def parse_variant(spec: str) -> Variant:
    """'NAME:key=value,key=value' (or just 'NAME' for the config as it is)."""
    name, _, rest = spec.partition(":")
    overrides = [item.strip() for item in rest.split(",") if item.strip()]
    if not name or any("=" not in o for o in overrides):
        raise UserError(f"--variant expects NAME:key=value[,key=value...], got '{spec}'", "<command line>")
    return Variant(name, overrides)


def _json_ready(value):
    """NaN (the half-width of a single run) and infinities as null: strict JSON readers refuse them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_json_ready(data), indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(path)


# overrides that say where and how fast a run trained, not what it trained: a finished run
# recorded on another machine (other paths, threads, workers, memory layout) is still the same run;
# like the thread count, the layout changes the float rounding only
ENVIRONMENT_KEYS = frozenset({
    "data.root", "data.num_workers", "train.init_from", "train.out_dir", "train.resume", "train.device",
    "train.threads", "train.channels_last", "train.cudnn_benchmark", "train.log_every", "train.save_every",
    "train.tensorboard",
})


def _defining(overrides: Sequence[str]) -> Dict[str, Any]:
    """Dotted key -> parsed value of the overrides that decide what a run trains (a later repeat wins)."""
    return {k: v for k, v in flatten_dotted(parse_overrides(overrides)).items() if k not in ENVIRONMENT_KEYS}


def check_same_run(result: dict, overrides: Sequence[str], path: Path) -> None:
    """A result.json answers for this run only if it was trained with the same defining overrides."""
    saved, asked = _defining(result.get("overrides", [])), _defining(overrides)
    key = first_difference(saved, asked)
    if key is not None:
        raise UserError(f"this finished run was trained with {key}={saved.get(key)}, the comparison asks for "
                        f"{key}={asked.get(key)}: compare into another --out, or delete this run", path)


def seed_of(result: dict) -> int:
    """The seed a result was trained with (older result.json files only name it in their overrides)."""
    if "seed" in result:
        return int(result["seed"])
    return int(_defining(result["overrides"])["train.seed"])


NOT_TERMS = ("event", "step", "lr", "data_wait_share", "sec_per_step")


def train_records(log_path: Path) -> List[dict]:
    """The log.jsonl records of training windows (not evaluations), oldest first; none without a log."""
    if not log_path.exists():
        return []
    records = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("event") == "train"]


def logged_train_seconds(log_path: Path) -> Optional[float]:
    """The training steps' time summed over the log's windows (sec_per_step x the steps since the record
    before): a resumed run counts every segment kept in its log, not only the last process's wall time."""
    records = [r for r in train_records(log_path) if "sec_per_step" in r]
    if not records:
        return None
    steps = [0] + [r["step"] for r in records]
    return sum(r["sec_per_step"] * (step - before) for r, before, step in zip(records, steps, steps[1:]))


def training_end(log_path: Path, fraction: float = 0.1) -> Dict[str, float]:
    """Mean of each logged loss term and diagnostic (e.g. SDET's aux_text_iou) over the last `fraction`
    of the training steps: what the run's losses had converged to, beside its score."""
    records = train_records(log_path)
    if not records:
        return {}
    last_step = records[-1]["step"]
    tail = [r for r in records if r["step"] > last_step * (1.0 - fraction)] or records[-1:]
    keys = [k for k, v in tail[-1].items() if k not in NOT_TERMS and isinstance(v, (int, float))]
    return {k: sum(r[k] for r in tail if k in r) / sum(1 for r in tail if k in r) for k in keys}


def format_result(result: dict) -> str:
    aux = result.get("train_end", {}).get("aux_text_iou")
    return (f"P {result['precision']:.4f} R {result['recall']:.4f} F {result['hmean']:.4f} "
            f"({result['train_seconds'] / 60:.1f} min{'' if aux is None else f', aux text IoU {aux:.3f}'})")


def run_one(config: Optional[str], overrides: Sequence[str], run_dir: Path, progress: bool) -> dict:
    from sdet.checkpoint import load_detector
    from sdet.data.datasets import load_split
    from sdet.engine.evaluator import evaluate
    from sdet.engine.trainer import Trainer

    done = run_dir / "result.json"
    if done.exists():
        result = json.loads(done.read_text(encoding="utf-8"))
        check_same_run(result, overrides, done)
        return result
    cfg = load_config(config, list(overrides) + [f"train.out_dir={run_dir}", "train.resume=true"])
    start = time.time()
    Trainer(cfg, progress=progress).run()
    wall_s = time.time() - start
    logged_s = logged_train_seconds(run_dir / "log.jsonl")
    train_s = wall_s if logged_s is None else logged_s
    # the final weights: best.pt is chosen on the val split when train.eval_every > 0, and scoring it
    # on that same split would favour the variants by selection
    detector, cfg, _ = load_detector(run_dir / "last.pt")
    metric = evaluate(detector, load_split(cfg.data, cfg.data.val_split), cfg).to_dict()
    result = {**metric, "seed": cfg.train.seed, "train_seconds": round(train_s, 1), "overrides": list(overrides),
              "train_end": training_end(run_dir / "log.jsonl")}
    _write_json(done, result)
    return result


def run_comparison(config: Optional[str], common: Sequence[str], variants: Sequence[Variant], seeds: Sequence[int],
                   out: Path, progress: bool = False, echo=print,
                   on_result: Optional[Callable[[str, dict], None]] = None) -> Dict[str, dict]:
    """Train and score every (seed, variant) run not finished yet, then write summary.json and table.md.

    ``on_result(variant name, result)`` is called after each run (a finished one read back included),
    so a caller cut off mid-grid can keep what was done."""
    if not variants:
        raise UserError("give at least one --variant", "<command line>")
    out.mkdir(parents=True, exist_ok=True)
    load_config(config, list(common))  # fail on a bad config before any training starts
    runs: Dict[str, List[dict]] = {}
    # seed-major, so an interrupted comparison holds every variant for the seeds it finished
    for seed in seeds:
        for variant in variants:
            run_dir = out / variant.name / f"seed{seed}"
            result = run_one(config, [*common, *variant.overrides, f"train.seed={seed}"], run_dir, progress)
            runs.setdefault(variant.name, []).append(result)
            if on_result:
                on_result(variant.name, result)
            if echo:
                echo(f"[compare] {variant.name} seed {seed}: {format_result(result)}")
    summary = {
        name: {m: vars(summarize([r[m] for r in results])) for m in METRICS} | {"runs": results}
        for name, results in runs.items()
    }
    reference = variants[0].name
    differences = paired_differences(runs, reference)
    _write_json(out / "summary.json", {"config": config, "common": list(common), "seeds": list(seeds), "variants": summary,
                                       "reference": reference, "paired_differences": differences})
    table = format_comparison(runs, seeds, reference, differences)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    if echo:
        echo(table)
    return summary


def paired_differences(runs: Dict[str, List[dict]], reference: str) -> Dict[str, dict]:
    """Per-seed differences (variant - reference) of every metric, summarised like the runs.

    Pairing by seed removes the seed-to-seed spread the variants share (same data order, same
    initialisation), so a small effect can show where the unpaired intervals overlap. Runs are
    matched by their seed, not their position; a seed the reference lacks is left out (each
    metric lists the seeds it pairs).
    """
    by_seed = {seed_of(r): r for r in runs[reference]}
    differences = {}
    for name, results in runs.items():
        if name == reference:
            continue
        pairs = [(r, by_seed[seed_of(r)]) for r in results if seed_of(r) in by_seed]
        seeds = [seed_of(r) for r, _ in pairs]
        differences[name] = {}
        for m in METRICS:
            values = [r[m] - ref[m] for r, ref in pairs]
            differences[name][m] = vars(summarize(values)) | {"per_seed": values, "seeds": seeds}
    return differences


def format_differences(differences: Dict[str, dict], reference: str) -> str:
    lines = [f"| variant - {reference} | ΔP (points) | ΔR (points) | ΔF (points) | F higher in |", "|---|---|---|---|---|"]
    for name, delta in differences.items():
        cells = [_format_delta(delta[m]) for m in METRICS]
        wins = sum(d > 0 for d in delta["hmean"]["per_seed"])
        lines.append(f"| {name} | {' | '.join(cells)} | {wins} of {len(delta['hmean']['per_seed'])} seeds |")
    lines.append("\npaired by seed: mean ± half-width of the 95% confidence interval (Student t) of the differences")
    return "\n".join(lines)


def _format_delta(summary: dict, scale: float = 100.0) -> str:
    if summary["n"] < 2:
        return f"{summary['mean'] * scale:+.2f}"
    return f"{summary['mean'] * scale:+.2f} ± {summary['half_width'] * scale:.2f}"


def format_comparison(runs: Dict[str, List[dict]], seeds: Sequence[int], reference: str,
                      differences: Optional[Dict[str, dict]] = None) -> str:
    """table.md: the variants' means, then their paired differences from the reference (if any)."""
    differences = paired_differences(runs, reference) if differences is None else differences
    table = format_table(runs, seeds)
    if differences:  # a single variant has nothing to pair with
        table += "\n\n" + format_differences(differences, reference)
    return table


def format_table(runs: Dict[str, List[dict]], seeds: Sequence[int]) -> str:
    lines = ["| variant | P (%) | R (%) | F (%) | seeds |", "|---|---|---|---|---|"]
    for name, results in runs.items():
        cells = [summarize([r[m] for r in results]).format() for m in METRICS]
        lines.append(f"| {name} | {' | '.join(cells)} | {len(results)} |")
    lines.append(f"\nmean ± half-width of the 95% confidence interval (Student t) over seeds {list(seeds)}")
    return "\n".join(lines)
