"""What every benchmark prints first: the machine, the load, and where the data lives."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ICDAR2015 = SHARED / "data" / "icdar2015"
PADDLE_WEIGHTS = SHARED / "weights" / "ppocr-ic15-db-mv3-x0.5"
# The SDET studies' variants (docs/SDET.md): the baseline first, as the reference of the paired differences
SDET_VARIANTS = (
    "baseline:method.name=baseline",
    "sdet-A@P3:method.name=sdet,method.options.aux_type=A,method.options.level=P3",
    "sdet-C@P3:method.name=sdet,method.options.aux_type=C,method.options.level=P3",
    # the untried option chosen for the PP-OCRv3 studies: the entropy term on from 30% of the schedule, after
    # the GT term alone has set the auxiliary map's polarity (from step 0 it locks a random one, docs/SDET.md (d))
    "sdet-C@P3-et30:method.name=sdet,method.options.aux_type=C,method.options.level=P3,method.options.et_start_fraction=0.3",
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cpu_name() -> str:
    """platform.processor() is often empty or just 'x86_64' on Linux; /proc/cpuinfo names the CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(name: str, threads: int) -> str:
    import torch

    load = os.getloadavg()[0]
    line = (f"{name}: machine {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{threads} threads, load average {load:.1f}")
    if load > (os.cpu_count() or 1):
        line += ("\n  warning: the machine is busy; absolute timings are inflated (ratios measured "
                 "side by side in this run stay comparable)")
    return line


def study_machine_line(name: str, config: str | None, overrides: list[str]) -> str:
    """The machine line with the thread count the study's runs will train with (train.threads)."""
    from sdet.config import load_config

    return machine_line(name, load_config(config, overrides).train.threads)


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0) so `peak_rss_mb` measures from here on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_script(name: str, main) -> None:
    """Exit with main()'s status; a user error (missing checkpoint, config, data root) is one line, exit 2."""
    from sdet.errors import UserError

    try:
        sys.exit(main())
    except UserError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(2)
