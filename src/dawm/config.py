"""The base of every stage's settings: a pydantic model saved beside the outputs as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from dawm.bids.derivatives import write_json
from dawm.errors import InputError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Settings of one stage; the same object drives the CLI, the Python API and the tests."""

    def save(self, path: str | Path) -> Path:
        """Write the settings as JSON (atomically)."""
        return write_json(path, self.model_dump(mode="json"))

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read settings written by :meth:`save` (``InputError`` naming the file if unusable)."""
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: config file not found") from None
        except (json.JSONDecodeError, ValueError) as exc:
            raise InputError(f"{path}: invalid {cls.__name__} ({exc})") from None
