"""User-facing errors: the CLI prints them as one line and exits 2, never a traceback."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class UserError(Exception):
    """Bad input from the user (path, file contents, config). Carries the file and line."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None, line: Optional[int] = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return f"{where}{self.message}"
