"""A training run's folder: one writer at a time, and no run ever loses another run's files.

`RunLock` is a lock file created atomically (O_CREAT | O_EXCL) holding the owner's pid and host;
a lock whose process is gone (same host, pid not alive) is stale and taken over. `set_aside`
moves an older run's files into `previous-<UTC time>/` instead of deleting them; it is called
only once the new run has loaded its data and built its model, so a run that cannot start
changes nothing. `truncate_log` keeps a resumed run's log.jsonl free of the steps an
interrupted process logged after its last checkpoint.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import List, Optional, Tuple

from sdet.errors import UserError

RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "config.yaml", "tb")
LOCK_NAME = ".lock"


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("train.out_dir names an existing file, not a folder", out_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Held for the whole run; a second `sdet train` into the same folder refuses to start."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_NAME
        self.held = False
        self.took_over: Optional[str] = None  # the stale lock's owner, when one was replaced

    def _owner(self) -> Tuple[int, str]:
        try:
            text = self.path.read_text(encoding="utf-8").split()
            return int(text[0]), text[1] if len(text) > 1 else ""
        except (OSError, ValueError, IndexError):
            return -1, ""  # unreadable or half-written: judged by its age below

    def _is_stale(self, pid: int, host: str) -> bool:
        if pid < 0:
            return time.time() - self.path.stat().st_mtime > 60
        return host == socket.gethostname() and not _pid_alive(pid)

    def acquire(self) -> "RunLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, host = self._owner()
                if not self._is_stale(pid, host):
                    who = f"pid {pid} on {host or 'an unknown host'}" if pid >= 0 else "a process starting up"
                    raise UserError(f"another training ({who}) is using this folder; wait for it to finish, or "
                                    f"delete the lock file if that process is gone", self.path) from None
                self.took_over = f"pid {pid} on {host}"
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            return self
        raise UserError("could not take the lock (another process keeps creating it)", self.path)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def previous_run_files(out_dir: Path) -> List[Path]:
    return [out_dir / name for name in RUN_FILES if (out_dir / name).exists()]


def set_aside(out_dir: Path) -> Optional[Path]:
    """Move an older run's files into a new `previous-<UTC time>` sub-folder; None when there are none."""
    files = previous_run_files(out_dir)
    if not files:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = out_dir / f"previous-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out_dir / f"previous-{stamp}-{n}"
    target.mkdir()
    for path in files:
        os.replace(path, target / path.name)
    return target


def truncate_log(log_path: Path, step: int) -> int:
    """Keep only the records up to `step` (the checkpoint's); returns how many were dropped."""
    if not log_path.exists():
        return 0
    kept, dropped = [], 0
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            dropped += 1
            continue
        if int(record.get("step", 0)) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = log_path.with_name(f".{log_path.name}.tmp")
        tmp.write_text("".join(l + "\n" for l in kept), encoding="utf-8")
        os.replace(tmp, log_path)
    return dropped
