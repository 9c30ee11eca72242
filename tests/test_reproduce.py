"""`sdet reproduce`: the paper's tables as plans, their published numbers, the CLI, a tiny end-to-end run."""
import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from sdet.cli import main
from sdet.config import build_dataclass, config_to_dict, load_config
from sdet.experiments.reproduce import (CONFIGS_DIR, DATA_ROOTS, TABLES, TEACHER_METHODS, TEACHER_SEED, VARIANTS,
                                        cells, load_paper_results, plan, reproduce)

from conftest import tiny_overrides

# counted from the tables of the paper (shared docs PAPER.md): rows x columns
PAPER_CELLS = {1: 8 * 2, 2: 5, 3: 8 * 6, 4: 8 * 3, 5: 6, 6: 2 * 6}  # rows of the CSV per table
PLANNED_CELLS = {1: 16, 2: 5, 3: 9 * 6, 4: 24, 5: 6, 6: 12}  # table 3 also shows DSN (table 5's numbers)
TEACHERS = {1: 0, 2: 0, 3: 6, 4: 3, 5: 0, 6: 0}  # one R50 teacher per dataset of a teacher-based row
SIX = {"icdar2013", "td500", "td-tr", "icdar2015", "total-text", "casia-10k"}


def _method(run) -> str:
    return next(o.split("=", 1)[1] for o in run.overrides if o.startswith("method.name="))


def test_paper_csv_holds_every_published_cell():
    paper = load_paper_results()
    assert Counter(key[0] for key in paper) == PAPER_CELLS
    assert paper[(3, "MV3-DB", "SDET", "IC15")] == {"P": 86.5, "R": 73.9, "F": 79.7}
    assert paper[(2, "MV3-EAST", "P2", "IC15")]["F"] == 79.0
    assert paper[(1, "MV3-DB", "type C", "IC13")] == {"P": 84.9, "R": 67.9, "F": 75.4}
    assert paper[(5, "MV3-DB", "DSN", "CASIA10K")]["F"] == 65.6


def test_every_paper_cell_is_attached_to_exactly_one_planned_cell():
    paper = load_paper_results()
    own = Counter()
    for table in TABLES:
        table_cells = cells(table)
        assert len(table_cells) == PLANNED_CELLS[table]
        for cell in table_cells:
            assert cell.paper_key in paper, cell
            if cell.paper_key[0] == table:
                own[cell.paper_key] += 1
            else:  # a cross-reference: table 3 shows DSN with table 5's numbers
                assert (table, cell.method, cell.paper_key[0]) == (3, "DSN", 5)
    assert set(own) == set(paper) and set(own.values()) == {1}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_plan_has_the_tables_runs_methods_and_datasets(table, tmp_path):
    runs = plan([table], {}, [0, 1], tmp_path)
    assert len(runs) == 2 * PLANNED_CELLS[table] + TEACHERS[table]
    assert len({r.run_dir for r in runs}) == len(runs)
    assert all(r.config.is_file() for r in runs)
    students = [r for r in runs if r.run_dir not in {s.teacher for s in runs}]
    datasets = {r.dataset for r in students}
    methods = Counter((r.model, _method(r), dict(o.split("=", 1) for o in r.overrides).get("method.options.aux_type"),
                       dict(o.split("=", 1) for o in r.overrides).get("method.options.level")) for r in students)
    expected = {
        1: ({"icdar2013", "icdar2015"}, {("MV3-EAST", "baseline", None, None), ("MV3-DB", "baseline", None, None)}
            | {(m, "sdet", t, "P3") for m in ("MV3-EAST", "MV3-DB") for t in "ABC"}),
        2: ({"icdar2015"}, {("MV3-EAST", "baseline", None, None)} | {("MV3-EAST", "sdet", "B", f"P{k}") for k in range(4)}),
        3: (SIX, {("MV3-DB", m, None, None) for m in ("baseline", "soft_target", "ka", "fitnets", "skd", "byot", "sad", "dsn")}
            | {("MV3-DB", "sdet", "A", "P3")}),
        4: ({"icdar2013", "icdar2015", "casia-10k"},
            {("MV3-EAST", m, None, None) for m in ("baseline", "soft_target", "ka", "fitnets", "skd", "byot", "sad")}
            | {("MV3-EAST", "sdet", "B", "P3")}),
        5: (SIX, {("MV3-DB", "dsn", None, None)}),
        6: (SIX, {("R50-DB", "baseline", None, None), ("R50-DB", "sdet", "A", "P3")}),
    }[table]
    assert datasets == expected[0] and set(methods) == expected[1]
    assert set(methods.values()) == {2 * len(datasets)}  # every method on every dataset, once per seed
    # seed-major after the teachers: every run of seed 0 before any of seed 1
    seeds = [r.seed for r in students]
    assert seeds == sorted(seeds)


def test_all_tables_share_runs(tmp_path):
    # per seed: MV3-DB 54 (table 3) + types B, C on IC13/IC15 (table 1); MV3-EAST 24 (table 4) + type A, C (table 1)
    # + P0..P2 (table 2); R50-DB 12 (table 6); plus 3 R50-EAST teachers (R50-DB ones are table 6's seed-0 runs)
    assert len(plan(sorted(TABLES), {}, [0, 1, 2], tmp_path)) == 3 * (54 + 4 + 24 + 4 + 3 + 12) + 3
    assert len(plan([3], {}, [1], tmp_path)) == 54 + 6  # without seed 0 the teachers are extra runs


def test_teacher_run_precedes_and_is_referenced(tmp_path):
    runs = plan([3, 4], {"icdar2015": "/d/ic15"}, [0, 1], tmp_path)
    position = {r.run_dir: i for i, r in enumerate(runs)}
    taught = [r for r in runs if _method(r) in TEACHER_METHODS]
    assert len(taught) == 2 * (4 * 6 + 4 * 3)
    for run in taught:
        teacher = runs[position[run.teacher]]
        assert position[run.teacher] < position[run.run_dir]
        assert f"method.teacher={run.teacher / 'best.pt'}" in run.overrides
        assert teacher.dataset == run.dataset and teacher.seed == TEACHER_SEED and _method(teacher) == "baseline"
        assert teacher.config == CONFIGS_DIR / run.dataset / {"MV3-DB": "r50_db.yaml", "MV3-EAST": "r50_east.yaml"}[run.model]
    assert not any(o.startswith("method.teacher=") for r in runs if r not in taught for o in r.overrides)
    ic15 = [r for r in runs if r.dataset == "icdar2015"]
    assert all("data.root=/d/ic15" in r.overrides for r in ic15)


def test_pretrained_backbones_go_to_their_models(tmp_path):
    runs = plan([3], {}, [0], tmp_path, pretrained={"mv3": "/w/mv3.pth", "r50": "/w/r50.pth"})
    for run in runs:
        weights = "/w/r50.pth" if run.model == "R50-DB" else "/w/mv3.pth"
        assert [o for o in run.overrides if o.startswith("model.backbone.pretrained=")] == [
            f"model.backbone.pretrained={weights}"]
    assert not any(o.startswith("model.backbone.pretrained") for r in plan([3], {}, [0], tmp_path) for o in r.overrides)


def _resolved(path: Path, overrides=()) -> dict:
    """A config as plain data, method options with their defaults filled in; out_dir aside."""
    from sdet.methods import method_class

    cfg = load_config(str(path), overrides)
    options = build_dataclass(method_class(cfg.method.name).Options, cfg.method.options)
    data = config_to_dict(dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, options={})))
    data["train"].pop("out_dir")
    return {**data, "options": dataclasses.asdict(options)}


def test_variant_overrides_give_the_dedicated_configs():
    """A method on any dataset is its base config + VARIANTS overrides: the same as each dedicated config."""
    from sdet.methods import METHODS

    pairs = []
    for name in ("soft_target", "ka", "fitnets", "skd", "byot", "sad", "dsn"):
        path = CONFIGS_DIR / "icdar2015" / f"mv3_db_{name}.yaml"
        if path.exists() and name in METHODS:
            pairs.append((path, "icdar2015/mv3_db.yaml", name))
    assert len(pairs) >= 6
    for dataset in DATA_ROOTS:
        pairs += [(CONFIGS_DIR / dataset / "mv3_db_sdet.yaml", f"{dataset}/mv3_db.yaml", "sdet-A-P3"),
                  (CONFIGS_DIR / dataset / "mv3_east_sdet.yaml", f"{dataset}/mv3_east.yaml", "sdet-B-P3")]
    for path in sorted((CONFIGS_DIR / "icdar2015" / "ablation").glob("*.yaml")):
        model, aux = path.stem.split("_sdet_type")
        pairs.append((path, f"icdar2015/{model}.yaml", f"sdet-{aux[0]}-{aux[2:] or 'P3'}"))
    assert len(pairs) >= 6 + 12 + 10
    for path, base, variant in pairs:
        assert _resolved(path) == _resolved(CONFIGS_DIR / base, VARIANTS[variant]), path


def test_dry_run_prints_commands_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "table3", "--dry-run", "--data", f"icdar2015={tmp_path}", "--seeds", "0,1",
                 "--out", str(out), "train.max_steps=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [l for l in lines if l.startswith("sdet train ")]
    assert len(commands) == 2 * 54 + 6 and "114 runs (6 of them teachers)" in lines[0]
    assert all(c.endswith(f"/seed{c.split('train.seed=')[1].split()[0]}") for c in commands)
    assert all("train.max_steps=7" in c for c in commands)
    assert any("method.name=skd" in c and "method.teacher=" in c for c in commands)
    assert any(f"data.root={tmp_path} " in c for c in commands) and any("data.mix.1.root=<hust-tr400>" in c for c in commands)
    assert not out.exists()


def test_data_root_finds_datasets_by_folder_name_and_seeds_can_be_a_count(tmp_path, capsys):
    """DESIGN.md's form: `sdet reproduce table3 --data-root /data --seeds 3`; --data wins over it."""
    for folder in ("icdar2015", "msra-td500", "HUST-TR400"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["reproduce", "table3", "--dry-run", "--data-root", str(tmp_path / "data"), "--seeds", "3",
                 "--data", f"icdar2015={other}", "--out", str(tmp_path / "out")]) == 0
    commands = [l for l in capsys.readouterr().out.splitlines() if l.startswith("sdet train ")]
    assert {c.split("train.seed=")[1].split()[0] for c in commands} == {"0", "1", "2"}
    assert any(f"data.root={tmp_path / 'data' / 'msra-td500'} " in c for c in commands)
    assert any(f"data.mix.1.root={tmp_path / 'data' / 'HUST-TR400'}" in c for c in commands)
    assert any(f"data.root={other} " in c for c in commands)
    assert not any(f"data.root={tmp_path / 'data' / 'icdar2015'} " in c for c in commands)
    assert any("data.root=<icdar2013>" in c for c in commands)
    assert main(["reproduce", "table2", "--dry-run", "--data-root", str(tmp_path / "data"), "--seeds", "4,",
                 "--out", str(tmp_path / "out")]) == 0
    commands = [l for l in capsys.readouterr().out.splitlines() if l.startswith("sdet train ")]
    assert {c.split("train.seed=")[1].split()[0] for c in commands} == {"4"}


def test_missing_or_bad_data_root_is_one_line_exit_2(tmp_path, capsys):
    def error(*args) -> str:
        assert main(["reproduce", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0]
        return err[0]

    line = error("2")
    assert "--data icdar2015=ROOT" in line and "table 2" in line
    line = error("6", *[f"--data={n}={tmp_path}" for n in ("icdar2013", "td500", "icdar2015", "total-text", "casia-10k")])
    assert "--data hust-tr400=ROOT" in line and "TD-TR" in line
    assert "nope: not found (--data icdar2015)" in error("2", "--data", f"icdar2015={tmp_path / 'nope'}")
    assert "icdar2016" in error("2", "--data", f"icdar2016={tmp_path}")
    assert "unknown table '7'" in error("7", "--data", f"icdar2015={tmp_path}")
    assert not (tmp_path / "out").exists()


def test_tiny_table_end_to_end_then_resume(synth_root, tmp_path):
    """Table 3 cut to IC15 x {baseline, ST}: teacher, baseline, ST; the report shows the paper beside ours."""
    spec = {3: {**TABLES[3], "datasets": {"icdar2015": "IC15"},
                "rows": [("MV3-DB", "baseline", "baseline"), ("MV3-DB", "ST", "soft_target")]}}
    overrides = tiny_overrides(synth_root, tmp_path / "unused", steps=1) + ["data.val_split=test"]
    out = tmp_path / "rep"
    lines = []
    done = reproduce(3, {"icdar2015": str(synth_root)}, [0], out, overrides, echo=lines.append, specs=spec)
    assert [(r.model, r.variant) for r in done.runs] == [("R50-DB", "baseline"), ("MV3-DB", "baseline"),
                                                         ("MV3-DB", "soft_target")]
    teacher = out / "icdar2015" / "r50_db" / "baseline" / "seed0"
    student = out / "icdar2015" / "mv3_db" / "soft_target" / "seed0"
    assert load_config(str(student / "config.yaml")).method.teacher == str(teacher / "best.pt")
    md = (out / "table3.md").read_text()
    assert done.reports == [out / "table3.md"]
    assert "| MV3-DB | ST | IC15 |" in md and "| 85.4 |" in md and "| 72.2 |" in md and "| 78.2 |" in md
    assert "| MV3-DB | baseline | IC15 |" in md and "| 87.1 |" in md and md.count("| 1 |") == 2
    csv_lines = (out / "table3.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[2].startswith("3,MV3-DB,ST,IC15,1,")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} | {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}
    assert len([p for p in stamps if p.name == "result.json"]) == 3
    lines.clear()
    reproduce(3, {"icdar2015": str(synth_root)}, [0], out, overrides, echo=lines.append, specs=spec)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sum("(finished earlier)" in l for l in lines) == 3
    assert (out / "table3.md").read_text() == md
