"""`sdet reproduce`: the paper's tables 1-6 as runs, measured over seeds, beside the published numbers.

A table is plain data: the datasets (configs/ folder -> the paper's column) and the rows (model,
the paper's method label, a variant). A variant is a list of overrides on the dataset's own base
config of that model (configs/<dataset>/mv3_db.yaml, ...), so every benchmark gets a method with
the same options; the tests check that these overrides give exactly the dedicated configs where
those exist (configs/icdar2015/mv3_db_<method>.yaml, */*_sdet.yaml, configs/icdar2015/ablation/).

A run is keyed by (dataset, model, variant, seed), not by table: a run that several tables share
(the MV3-DB baseline is in tables 1 and 3) trains once. Every run is `compare.run_one`: resumable
from its last.pt, skipped once its result.json exists. Teacher-based methods learn from the R50
detector of the same type trained on the same dataset with seed TEACHER_SEED, which the plan
trains first (it is table 6's R50-DB baseline run when seed 0 is measured too).
"""
from __future__ import annotations

import csv
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from sdet.config import build_dataclass, load_config
from sdet.errors import UserError
from sdet.experiments.compare import METRICS, format_result, parse_seeds, run_one
from sdet.experiments.stats import summarize

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
PAPER_CSV = Path(__file__).with_name("paper_results.csv")
TEACHER_SEED = 0  # one teacher per dataset, shared by every seed of the students

MODEL_CONFIGS = {"MV3-DB": "mv3_db", "MV3-EAST": "mv3_east", "R50-DB": "r50_db", "R50-EAST": "r50_east"}
TEACHERS = {"MV3-DB": "R50-DB", "MV3-EAST": "R50-EAST"}  # the same detector type on ResNet50
BACKBONES = {"MV3-DB": "mv3", "MV3-EAST": "mv3", "R50-DB": "r50", "R50-EAST": "r50"}  # --pretrained NAME=PATH
TEACHER_METHODS = ("soft_target", "fitnets", "ka", "skd")

# configs/ folder -> the config keys that take a --data root, and which root (--data NAME=ROOT)
DATA_ROOTS: Dict[str, Dict[str, str]] = {
    "icdar2013": {"data.root": "icdar2013"},
    "icdar2015": {"data.root": "icdar2015"},
    "td500": {"data.root": "td500"},
    "td-tr": {"data.root": "td500", "data.mix.0.root": "td500", "data.mix.1.root": "hust-tr400"},
    "total-text": {"data.root": "total-text"},
    "casia-10k": {"data.root": "casia-10k"},
}
DATA_NAMES = sorted({name for roots in DATA_ROOTS.values() for name in roots.values()})

VARIANTS: Dict[str, List[str]] = {
    "baseline": ["method.name=baseline"],
    **{f"sdet-{aux}-{level}": ["method.name=sdet", f"method.options.aux_type={aux}", f"method.options.level={level}"]
       for aux in "ABC" for level in ("P0", "P1", "P2", "P3")},
    # the comparison methods at their options' defaults, which are their configs' settings
    **{name: [f"method.name={name}"] for name in ("soft_target", "ka", "fitnets", "skd", "byot", "sad", "dsn")},
}

SIX_DATASETS = {"icdar2013": "IC13", "td500": "TD500", "td-tr": "TD-TR", "icdar2015": "IC15",
                "total-text": "TotalText", "casia-10k": "CASIA10K"}
COMPARISON = [("baseline", "baseline"), ("ST", "soft_target"), ("KA", "ka"), ("FitNets", "fitnets"),
              ("SKD", "skd"), ("SD", "byot"), ("SAD", "sad")]
AUX_TYPES = [("baseline", "baseline"), ("type A", "sdet-A-P3"), ("type B", "sdet-B-P3"), ("type C", "sdet-C-P3")]

# table id -> title, datasets (configs/ folder -> the paper's column), rows (model, paper label, variant),
# and paper_table: rows whose published numbers are in another table (label -> table id)
TABLES: Dict[int, dict] = {
    1: {"title": "Table 1 - auxiliary classifier type (A, B, C) at P3",
        "datasets": {"icdar2013": "IC13", "icdar2015": "IC15"},
        "rows": [(model, label, variant) for model in ("MV3-EAST", "MV3-DB") for label, variant in AUX_TYPES]},
    2: {"title": "Table 2 - pyramid level of the type-B auxiliary network (MV3-EAST, ICDAR2015)",
        "datasets": {"icdar2015": "IC15"},
        "rows": [("MV3-EAST", "baseline", "baseline")] + [("MV3-EAST", p, f"sdet-B-{p}") for p in ("P0", "P1", "P2", "P3")]},
    3: {"title": "Table 3 - distillation methods on MV3-DB",
        "datasets": SIX_DATASETS,
        "rows": [("MV3-DB", label, variant) for label, variant in COMPARISON]
                + [("MV3-DB", "DSN", "dsn"), ("MV3-DB", "SDET", "sdet-A-P3")],
        "paper_table": {"DSN": 5}},
    4: {"title": "Table 4 - distillation methods on MV3-EAST",
        "datasets": {"icdar2013": "IC13", "icdar2015": "IC15", "casia-10k": "CASIA10K"},
        "rows": [("MV3-EAST", label, variant) for label, variant in COMPARISON] + [("MV3-EAST", "SDET", "sdet-B-P3")]},
    5: {"title": "Table 5 - DSN on MV3-DB", "datasets": SIX_DATASETS, "rows": [("MV3-DB", "DSN", "dsn")]},
    6: {"title": "Table 6 - SDET on ResNet50-DB", "datasets": SIX_DATASETS,
        "rows": [("R50-DB", "baseline", "baseline"), ("R50-DB", "SDET", "sdet-A-P3")]},
}

PaperKey = Tuple[int, str, str, str]  # (table, model, method, column)


@dataclass
class Run:
    dataset: str  # configs/ folder
    model: str  # the paper's name, e.g. MV3-DB
    variant: str
    seed: int
    config: Path
    overrides: List[str]  # all but train.out_dir, which run_one adds
    run_dir: Path
    teacher: Optional[Path] = None  # the teacher's run dir, earlier in the plan

    def command(self) -> str:
        """The equivalent `sdet train` command line (reproduce then evaluates last.pt into result.json)."""
        return shlex.join(["sdet", "train", _shown(self.config), *self.overrides, f"train.out_dir={self.run_dir}"])


@dataclass
class Cell:
    """One published number triple of a table, and the runs (one per seed) that measure it."""
    model: str
    method: str
    dataset: str
    column: str
    variant: str
    paper_key: PaperKey


@dataclass
class Reproduction:
    runs: List[Run]
    reports: List[Path] = field(default_factory=list)  # table<k>.md (none for a dry run)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_dir(out: Path, dataset: str, model: str, variant: str, seed: int) -> Path:
    return out / dataset / MODEL_CONFIGS[model] / variant / f"seed{seed}"


def parse_tables(text: str, specs: Mapping[int, dict] = TABLES) -> List[int]:
    """'3', 'table3' or 'all'."""
    if text == "all":
        return sorted(specs)
    key = text[len("table"):] if text.startswith("table") else text
    if not key.isdigit() or int(key) not in specs:
        raise UserError(f"unknown table '{text}': give one of {', '.join(map(str, sorted(specs)))} or all", "<command line>")
    return [int(key)]


# folder names under --data-root, besides the dataset's own name (the official archives' names)
ROOT_FOLDERS: Dict[str, List[str]] = {"td500": ["msra-td500", "MSRA-TD500"], "hust-tr400": ["HUST-TR400"],
                                      "total-text": ["totaltext", "Total-Text"], "casia-10k": ["CASIA-10K"]}


def roots_under(data_root: Optional[str]) -> Dict[str, str]:
    """--data-root DIR: every dataset found as DIR/<name> (or an alias of ROOT_FOLDERS); others stay unset."""
    if not data_root:
        return {}
    base = Path(data_root)
    if not base.is_dir():
        raise UserError(f"--data-root: not a folder: {data_root}", data_root)
    found = {}
    for name in DATA_NAMES:
        folder = next((base / f for f in [name, *ROOT_FOLDERS.get(name, [])] if (base / f).is_dir()), None)
        if folder is not None:
            found[name] = str(folder)
    return found


def parse_seeds_or_count(text: str) -> List[int]:
    """'0,1,2' lists seeds; a lone 'N' (DESIGN.md's `--seeds 3`) means N seeds 0..N-1; 'N,' is seed N alone."""
    seeds = parse_seeds(text)
    return list(range(seeds[0])) if "," not in text and seeds[0] > 0 else seeds


def parse_named_paths(items: Sequence[str], names: Sequence[str], flag: str) -> Dict[str, str]:
    """NAME=PATH items (--data, --pretrained) -> {NAME: PATH}."""
    paths: Dict[str, str] = {}
    for item in items:
        name, _, path = item.partition("=")
        if name not in names or not path:
            raise UserError(f"{flag} expects NAME=PATH with NAME one of {', '.join(names)}, got '{item}'", "<command line>")
        paths[name] = path
    return paths


def check_inputs(tables: Sequence[int], data_roots: Mapping[str, str], pretrained: Mapping[str, str],
                 specs: Mapping[int, dict], require: bool = True) -> None:
    """Every given path exists and (when `require`d) each root a table needs is given: fail before anything trains."""
    for flag, paths in (("--data", data_roots), ("--pretrained", pretrained)):
        for name, path in paths.items():
            if not Path(path).exists():
                raise UserError(f"not found ({flag} {name})", path)
    for table in tables:
        for dataset, column in specs[table]["datasets"].items():
            for name in DATA_ROOTS[dataset].values():
                if require and name not in data_roots:
                    raise UserError(f"table {table} needs --data {name}=ROOT for its {column} column "
                                    f"(dataset {dataset})", "<command line>")


def cells(table: int, specs: Mapping[int, dict] = TABLES) -> List[Cell]:
    spec = specs[table]
    out = []
    for model, label, variant in spec["rows"]:
        source = spec.get("paper_table", {}).get(label, table)
        for dataset, column in spec["datasets"].items():
            out.append(Cell(model, label, dataset, column, variant, (source, model, label, column)))
    return out


def plan(tables: Sequence[int], data_roots: Mapping[str, str], seeds: Sequence[int], out: Path,
         overrides: Sequence[str] = (), specs: Mapping[int, dict] = TABLES, configs_dir: Path = CONFIGS_DIR,
         pretrained: Optional[Mapping[str, str]] = None) -> List[Run]:
    """Every run the tables need, once: teachers first, then seed-major, so that an interrupted
    reproduction holds complete tables for the seeds it finished. A missing root shows as <NAME>.
    `pretrained` (mv3 / r50 -> ImageNet state dict) initialises the backbones of those models."""

    def make(dataset: str, model: str, variant: str, seed: int, teacher: Optional[Path] = None) -> Run:
        data = [f"{key}={data_roots.get(name, f'<{name}>')}" for key, name in DATA_ROOTS[dataset].items()]
        weights = (pretrained or {}).get(BACKBONES[model])
        init = [f"model.backbone.pretrained={weights}"] if weights else []
        uses_teacher = [f"method.teacher={teacher / 'best.pt'}"] if teacher else []
        return Run(dataset, model, variant, seed, configs_dir / dataset / f"{MODEL_CONFIGS[model]}.yaml",
                   [*data, *init, *VARIANTS[variant], *uses_teacher, f"train.seed={seed}", *overrides],
                   run_dir(out, dataset, model, variant, seed), teacher)

    teachers: List[Run] = []
    students: List[Run] = []
    for seed in seeds:
        for table in tables:
            for cell in cells(table, specs):
                teacher = None
                if cell.variant in TEACHER_METHODS:
                    teachers.append(make(cell.dataset, TEACHERS[cell.model], "baseline", TEACHER_SEED))
                    teacher = teachers[-1].run_dir
                students.append(make(cell.dataset, cell.model, cell.variant, seed, teacher))
    unique: Dict[Path, Run] = {}
    for run in teachers + students:
        unique.setdefault(run.run_dir, run)
    return list(unique.values())


def validate(runs: Sequence[Run]) -> int:
    """Load every run's config and check its method and options (a bad key fails here, not hours
    in); return the total training steps."""
    from sdet.methods import method_class

    steps = 0
    for run in runs:
        cfg = load_config(str(run.config), run.overrides)
        steps += cfg.train.max_steps
        cls = method_class(cfg.method.name, str(run.config))
        build_dataclass(cls.Options, cfg.method.options, str(run.config), prefix="method.options.")
    return steps


def load_paper_results(path: Path = PAPER_CSV) -> Dict[PaperKey, Dict[str, float]]:
    """(table, model, method, column) -> {'P', 'R', 'F'} in percent."""
    with path.open(encoding="utf-8") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {(int(r["table"]), r["model"], r["method"], r["dataset"]): {k: float(r[k]) for k in "PRF"} for r in rows}


def _read_result(path: Path) -> Optional[dict]:
    done = path / "result.json"
    return json.loads(done.read_text(encoding="utf-8")) if done.exists() else None


def _pct(value: float) -> str:
    return "" if value != value else f"{value * 100:.2f}"  # nan (no run, or one seed's CI): empty


def write_report(table: int, seeds: Sequence[int], out: Path, paper: Mapping[PaperKey, Dict[str, float]],
                 specs: Mapping[int, dict] = TABLES) -> Path:
    """OUT/table<k>.md and .csv from the result.json files on disk: ours (mean ± 95% CI) beside the paper."""
    spec = specs[table]
    lines = [f"# {spec['title']}", "",
             "| model | method | dataset | P ours | P paper | R ours | R paper | F ours | F paper | ΔF | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for cell in cells(table, specs):
        results = [_read_result(run_dir(out, cell.dataset, cell.model, cell.variant, s)) for s in seeds]
        results = [r for r in results if r is not None]
        ours = {k: summarize([r[metric] for r in results]) for k, metric in zip("PRF", METRICS)}
        paper_prf = paper.get(cell.paper_key, {})
        delta = ours["F"].mean * 100 - paper_prf["F"] if results and paper_prf else None
        cols = [f"{ours[k].format() if results else '-'} | {paper_prf.get(k, '-')}" for k in "PRF"]
        shown = "-" if delta is None else f"{delta:+.1f}"
        lines.append(f"| {cell.model} | {cell.method} | {cell.column} | {' | '.join(cols)} | {shown} | {len(results)} |")
        rows.append({"table": table, "model": cell.model, "method": cell.method, "dataset": cell.column,
                     "seeds": len(results), **{k: _pct(ours[k].mean) for k in "PRF"},
                     **{f"{k}_ci": _pct(ours[k].half_width) for k in "PRF"},
                     **{f"paper_{k}": paper_prf.get(k, "") for k in "PRF"},
                     "delta_F": "" if delta is None else f"{delta:.2f}"})
    lines += ["", f"ours: mean ± half-width of the 95% confidence interval (Student t) over the finished runs of "
                  f"seeds {list(seeds)} (column seeds); ΔF = ours - paper, in F points.",
              "paper: Chen, Yang, Lai, Acta Automatica Sinica 2024, 50(11) (sdet/experiments/paper_results.csv)."]
    for label, source in spec.get("paper_table", {}).items():
        lines.append(f"{label}: the paper's numbers are from its table {source}.")
    if any(cell.variant in TEACHER_METHODS for cell in cells(table, specs)):
        lines.append(f"Teacher-based rows learn from {out}/<dataset>/r50_db|r50_east/baseline/seed{TEACHER_SEED}/best.pt.")
    lines.append(f"Runs: {out}/<dataset>/<model>/<variant>/seed<k>/ (result.json, best.pt, log.jsonl).")
    md = out / f"table{table}.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (out / f"table{table}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return md


def reproduce(table: Union[int, str], data_roots: Mapping[str, str], seeds: Sequence[int], out: Path,
              overrides: Sequence[str] = (), dry_run: bool = False, echo: Optional[Callable[[str], None]] = print,
              progress: bool = False, pretrained: Optional[Mapping[str, str]] = None, specs: Mapping[int, dict] = TABLES,
              configs_dir: Path = CONFIGS_DIR) -> Reproduction:
    """Train and evaluate every run of a table ('all': of every table) not finished yet, then write
    OUT/table<k>.md and .csv (rewritten after each run, so partial results are readable).
    `overrides` apply to every run, after the table's own (e.g. train.max_steps=1000). A dry run
    lists the runs, with <NAME> for a data root not given."""
    tables = parse_tables(table, specs) if isinstance(table, str) else [table]
    if not seeds:
        raise UserError("give at least one seed", "<command line>")
    check_inputs(tables, data_roots, pretrained or {}, specs, require=not dry_run)
    runs = plan(tables, data_roots, seeds, out, overrides, specs, configs_dir, pretrained)
    steps = validate(runs)
    say = echo or (lambda _: None)
    finished = {r.run_dir for r in runs if (r.run_dir / "result.json").exists()}
    if dry_run:
        teachers = {r.teacher for r in runs if r.teacher}
        say(f"# table(s) {', '.join(map(str, tables))}: {len(runs)} runs ({len(teachers)} of them teachers), "
            f"{len(finished)} finished, {len(runs) - len(finished)} to train; {steps:,} training steps in all")
        say("# each run: this `sdet train`, then its final weights (last.pt) are scored on the test split")
        for run in runs:
            say(("# done: " if run.run_dir in finished else "") + run.command())
        return Reproduction(runs)
    paper = load_paper_results()
    out.mkdir(parents=True, exist_ok=True)
    reports: List[Path] = []
    for i, run in enumerate(runs, 1):
        result = run_one(str(run.config), run.overrides, run.run_dir, progress)
        say(f"[reproduce] {i}/{len(runs)} {run.dataset} {run.model} {run.variant} seed {run.seed}: "
            f"{format_result(result)}{' (finished earlier)' if run.run_dir in finished else ''}")
        reports = [write_report(t, seeds, out, paper, specs) for t in tables]
    for md in reports:
        say(md.read_text(encoding="utf-8"))
    return Reproduction(runs, reports)
