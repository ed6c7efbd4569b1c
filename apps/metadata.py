"""`assets/metadata.json`: one schema, written and read here only.

A run directory and its export describe themselves with the same `Metadata`: the
runner builds it in memory for a run (`apps.runner.load`), `apps.export` writes it
into a SavedModel, and everything that reads an export (`runner.load`, `apps info`,
`apps serve`, `apps models list`) reads it back through `read`. The common entries are
the fields below; a task's own entries (`Task.metadata_entries`: a classifier's
labels, a translator's beam size, ...) sit beside them at the top level of the file,
so TF Serving-side clients read `metadata["labels"]` as before.

`schema` counts changes of this file's meaning. An export without it was written
before it existed (schema 0, the same entries); one with a larger number than
`SCHEMA` was written by a newer apps and is refused in one sentence.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from apps.errors import DataError

SCHEMA = 1
FILE = Path("assets") / "metadata.json"


def environment() -> dict[str, str]:
    """The versions an export was made with."""
    import keras
    import tensorflow as tf

    import apps

    return {"apps": apps.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version()}


@dataclass
class Metadata:
    """What a trained model says of itself; `entries` are the task's own."""

    task: str
    config: dict[str, Any] = field(default_factory=dict)  # the run's settings, portable
    inputters: dict[str, dict[str, Any]] = field(default_factory=dict)  # by data side
    metrics: dict[str, Any] = field(default_factory=dict)  # validation, as kept by the task
    entries: dict[str, Any] = field(default_factory=dict)  # the task's own (top level)
    recurrence: str = "fused"  # what the graph holds: "fused" (any host) or "cudnn"
    precision: str = "float32"  # the graph's products: "float32" or "mixed_bfloat16"
    signatures: list[str] = field(default_factory=list)
    exported_at: str | None = None  # None: a run directory, built in memory
    environment: dict[str, str] = field(default_factory=dict)
    schema: int = SCHEMA

    @property
    def runs_on(self) -> list[str]:
        return ["gpu"] if self.recurrence == "cudnn" else ["cpu", "gpu"]

    @property
    def resolved(self) -> dict[str, Any]:
        """What `auto` became: while training (the run's config.json) and in this graph
        (float32 weights whatever the training precision; its products and recurrence)."""
        return {"training": dict(self.config.get("resolved") or {}),
                "serving": {"precision": self.precision, "recurrence": self.recurrence}}

    def to_json(self) -> dict[str, Any]:
        """The file's content: common entries, then the task's, then what the export adds."""
        common = asdict(self)
        entries = common.pop("entries")
        clash = sorted(set(entries) & (set(common) | {"runs_on", "resolved"}))
        if clash:
            raise ValueError(f"task metadata entries reuse common names: {clash}")
        head = {key: common.pop(key) for key in ("schema", "task", "recurrence")}
        return {**head, "runs_on": self.runs_on, "config": common.pop("config"),
                "inputters": common.pop("inputters"), "metrics": common.pop("metrics"),
                **entries, "resolved": self.resolved, **common}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> Metadata:
        schema = data.get("schema", 0)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise DataError(f"'{path}' was exported by a newer apps (metadata schema {schema}; "
                            f"this apps reads schema {SCHEMA} and older): upgrade apps to "
                            "use it.")
        own = {f.name for f in fields(cls)} - {"entries"}
        derived = {"runs_on", "resolved"}  # computed from the rest
        return cls(**{**{key: data[key] for key in own if key in data}, "schema": schema},
                   entries={k: v for k, v in data.items() if k not in own | derived})

    # read like the file's dict: common and task entries alike
    def get(self, key: str, default: Any = None) -> Any:
        found = self.to_json()
        return found.get(key, default)

    def __getitem__(self, key: str) -> Any:
        found = self.to_json()
        if key not in found:
            raise KeyError(key)
        return found[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_json()


def read(saved_model_dir: Path) -> Metadata | None:
    """The export's metadata, or None when it has no file (not made by apps)."""
    path = Path(saved_model_dir) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"'{path}' is not readable JSON: export the model again.") from None
    if not isinstance(data, dict):
        raise DataError(f"'{path}' is not a JSON object: export the model again.")
    return Metadata.from_json(data, Path(saved_model_dir))


def write(directory: Path, metadata: Metadata, signatures: list[str]) -> None:
    """Write the file into an export being made (stamped with its signatures and time)."""
    stamped = Metadata(**{**{f.name: getattr(metadata, f.name) for f in fields(metadata)},
                          "signatures": sorted(signatures),
                          "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          "environment": environment()})
    path = Path(directory) / FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(stamped.to_json(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
