"""The two directory layouts on disk, each defined once here.

* A training run (`RunDirectory`): written by `apps.training`, read by evaluate,
  predict, export, `apps info` and resume. Inputters add their own files
  (`tokenizer.model`, `labels.json`, ...).
* The TF Serving model layout: `BASE/<name>/<version>/` and `BASE/models.config`,
  written by export and read by the server and `apps models`. Only children whose
  whole name is an integer are versions; anything else (such as the temporary
  directory an export is written to) is ignored, as TF Serving does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODELS_CONFIG = "models.config"


@dataclass(frozen=True)
class RunDirectory:
    """The files a training run writes (docs/architecture.md)."""

    path: Path

    config = property(lambda self: self.path / "config.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_weights = property(lambda self: self.checkpoints / "best.weights.h5")
    backup = property(lambda self: self.path / "backup")
    state = property(lambda self: self.backup / "state.json")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    logs = property(lambda self: self.path / "logs")
    plots = property(lambda self: self.path / "plots")

    def split_part(self, part: str, suffix: str) -> Path:
        """Where a run names the parts of --data it trained on ("kept") and held out for
        validation ("heldout"), as files of the task's own format (`suffix`)."""
        return self.path / f"{part}{suffix}"

    def epoch_weights(self, epoch: int) -> Path:
        """Where `--keep-epochs` keeps an epoch's weights."""
        return self.checkpoints / f"epoch-{epoch}.weights.h5"

    def kept_epochs(self) -> list[int]:
        """The epochs whose weights are kept (`--keep-epochs`), in order."""
        found = (re.fullmatch(r"epoch-(\d+)\.weights\.h5", p.name)
                 for p in self.checkpoints.glob("epoch-*.weights.h5"))
        return sorted(int(match.group(1)) for match in found if match)

    def is_finished(self) -> bool:
        return self.metrics.is_file() and not self.state.is_file()

    def is_resumable(self) -> bool:
        return self.state.is_file() and self.config.is_file()

    def has_best_epoch(self) -> bool:
        """What evaluate / predict / export read: the config and the best epoch's weights."""
        return self.config.is_file() and self.best_weights.is_file()

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config.read_text(encoding="utf-8"))

    def read_state(self) -> dict[str, Any]:
        return json.loads(self.state.read_text(encoding="utf-8"))


def list_versions(model_dir: Path) -> list[int]:
    """Numeric version directories under `model_dir` that hold a saved_model.pb, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    versions = []
    for child in model_dir.iterdir():
        if child.name.isdigit() and (child / "saved_model.pb").is_file():
            versions.append(int(child.name))
    return sorted(versions)


def list_models(base_path: Path) -> dict[str, list[int]]:
    """Model names under `base_path` that have at least one version, with their versions."""
    base_path = Path(base_path)
    if not base_path.is_dir():
        return {}
    models = {}
    for child in sorted(base_path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            versions = list_versions(child)
            if versions:
                models[child.name] = versions
    return models


def is_saved_model(path: Path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def newest_version_dir(path: Path) -> Path | None:
    """`path` itself if it is a SavedModel, else its newest numeric version, else None."""
    path = Path(path)
    if is_saved_model(path):
        return path
    versions = list_versions(path)
    return path / str(versions[-1]) if versions else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def models_config_text(base_path: Path, container_base: str | None = None) -> str:
    """TF Serving's `model_config_list` for every model under `base_path`.

    `container_base` replaces the base path in `base_path:` lines (for example
    `/models` when the directory is mounted into the tensorflow/serving image).
    """
    base_path = Path(base_path).resolve()
    lines = ["model_config_list {"]
    for name in list_models(base_path):
        model_base = (f"{container_base.rstrip('/')}/{name}" if container_base
                      else str(base_path / name))
        lines += [
            "  config {",
            f"    name: '{name}'",
            f"    base_path: '{model_base}'",
            "    model_platform: 'tensorflow'",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_models_config(base_path: Path, container_base: str | None = "/models") -> Path:
    """(Re)write `BASE/models.config`; paths default to `/models/<name>` for Docker."""
    path = Path(base_path) / MODELS_CONFIG
    atomic_write_text(path, models_config_text(base_path, container_base))
    return path


def is_run_directory(path: Path) -> bool:
    """A training run that kept a best epoch (what evaluate / predict / export read)."""
    return RunDirectory(Path(path)).has_best_epoch()


def locate_model(path: Path) -> tuple[str, Path]:
    """("run", dir) for a training run, ("saved_model", version dir) for an export.

    A model base directory (`saved_models/sentiment`) means its newest version.
    """
    from apps.errors import ModelPathError

    path = Path(path)
    if is_run_directory(path):
        return "run", path
    version = newest_version_dir(path)
    if version is not None:
        return "saved_model", version
    if not path.exists():
        raise ModelPathError(f"'{path}' does not exist: give a run directory or an exported model.")
    raise ModelPathError(
        f"'{path}' is neither a training run (config.json and checkpoints/best.weights.h5) "
        "nor an exported SavedModel (saved_model.pb, or numbered versions holding one)."
    )
