"""What a run directory or an export holds: `apps info PATH` and the summary at training start.

One description for both kinds: the task, the settings and what `auto` became, the
tokenizers (inputters) by data side, the validation metrics, the model's size, and
each serving signature with its inputs and outputs. A run's signatures are traced in
memory as `export` would trace them; an export's are read from the SavedModel.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from apps.errors import ModelPathError
from apps.export import load_saved_model
from apps.layout import RunDirectory, locate_model

TASK_MODULES = {"sentiment": "apps.sentiment.task", "lm": "apps.lm.task",
                "translation": "apps.translation.task", "speech": "apps.speech.task"}
HIDDEN_CONFIG = ("task", "resolved")


def task_named(name: str | None, path: Path):
    """The task object a run or an export names; one sentence if it names none we know."""
    if name not in TASK_MODULES:
        raise ModelPathError(f"'{path}' belongs to {'task ' + repr(name) if name else 'no task'}"
                             f": apps knows {', '.join(TASK_MODULES)}.")
    return importlib.import_module(TASK_MODULES[name]).TASK


# ------------------------------------------------------------------------- the model


def parameter_count(variables) -> int:
    return int(sum(int(np.prod(v.shape)) for v in variables))


def model_layers(model) -> list[dict[str, Any]]:
    """Each layer that holds weights, named by its path in the model (nested layers
    included), with its parameter count and the shapes of its weights, in build order."""
    layers: dict[str, dict[str, Any]] = {}
    for weight in model.weights:
        parts = weight.path.split("/")
        name = "/".join(parts[1:-1]) or parts[0]
        row = layers.setdefault(name, {"name": name, "parameters": 0, "shapes": []})
        row["parameters"] += int(np.prod(weight.shape))
        row["shapes"].append(list(weight.shape))
    return list(layers.values())


def model_description(model) -> dict[str, Any]:
    return {"parameters": parameter_count(model.weights),
            "trainable_parameters": parameter_count(model.trainable_weights),
            "layers": model_layers(model)}


def format_model(description: dict[str, Any]) -> str:
    """A table of layers and the parameter count, as `train` prints it before epoch 1."""
    lines = [f"Model: {description['parameters']:,} parameters "
             f"({description['trainable_parameters']:,} trainable)"]
    layers = description.get("layers") or []
    if layers:
        width = max(len(layer["name"]) for layer in layers) + 2
        for layer in layers:
            shapes = "  ".join("x".join(map(str, shape)) for shape in layer["shapes"])
            lines.append(f"  {layer['name']:<{width}}{layer['parameters']:>12,}  {shapes}")
    return "\n".join(lines)


def print_model_summary(model, verbose: int = 1) -> None:
    """The parameter count and layer shapes on stdout, when training starts (not --quiet)."""
    if verbose:
        print(format_model(model_description(model)), flush=True)


# --------------------------------------------------------------------- signatures


def spec_description(spec) -> dict[str, Any]:
    shape = spec.shape
    dims = None if shape.rank is None else [d if d is not None else -1 for d in shape.as_list()]
    return {"dtype": spec.dtype.name, "shape": dims}


def signature_description(concrete) -> dict[str, Any]:
    """{"inputs": {name: {dtype, shape}}, "outputs": {...}} of a concrete function (-1:
    any size)."""
    args, kwargs = concrete.structured_input_signature
    inputs = dict(kwargs)
    if args:
        names = [arg.name for arg in concrete.inputs[: len(args)]]
        inputs.update({spec.name or name: spec for spec, name in zip(args, names)})
    outputs = concrete.structured_outputs
    outputs = outputs if isinstance(outputs, dict) else {"output_0": outputs}
    return {"inputs": {name: spec_description(spec) for name, spec in sorted(inputs.items())},
            "outputs": {name: spec_description(tensor) for name, tensor
                        in sorted(outputs.items())}}


# ---------------------------------------------------------------------- describe


def describe(path: Path) -> dict[str, Any]:
    """Everything `apps info` shows of a run directory or an export, as one dict."""
    kind, path = locate_model(Path(path))
    return describe_run(path) if kind == "run" else describe_export(path)


def describe_run(path: Path) -> dict[str, Any]:
    from apps import layers, runner

    run = RunDirectory(path)
    config = run.read_config()
    task = task_named(config.get("task"), path)
    trained = runner.load(task, path)
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    with layers.traced_recurrence("fused"):
        signatures = {name: signature_description(function.get_concrete_function())
                      for name, function in sorted(task.signatures(trained).items())}
    return {"path": str(path), "kind": "run", "task": task.name,
            "finished": run.metrics.is_file(),
            "settings": {k: v for k, v in config.items() if k not in HIDDEN_CONFIG},
            "resolved": config.get("resolved", {}),
            "inputters": {side: inputter.metadata()
                          for side, inputter in trained.inputters.items()},
            "metrics": metrics.get("valid", {}),
            "model": model_description(trained.model),
            "signatures": signatures}


def describe_export(path: Path) -> dict[str, Any]:
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    from apps.metadata import Metadata
    from apps.metadata import read as read_metadata
    from pipelines.tokenizer import quiet_native_logs

    metadata = (read_metadata(path) or Metadata(task=None)).to_json()
    task = task_named(metadata.get("task"), path)
    with quiet_native_logs():
        loaded = load_saved_model(path)
    config = metadata.get("config", {})
    variables = getattr(loaded, "trainable_variables", None) or []
    own = ("schema", "task", "config", "inputters", "metrics", "resolved", "signatures",
           "exported_at", "environment")
    return {"path": str(path), "kind": "saved_model", "task": task.name,
            "version": path.name, "exported_at": metadata.get("exported_at"),
            "environment": metadata.get("environment", {}),
            "settings": {k: v for k, v in config.items() if k not in HIDDEN_CONFIG},
            "resolved": metadata["resolved"],
            "inputters": metadata.get("inputters", {}),
            "metrics": metadata.get("metrics", {}),
            "model": {"parameters": parameter_count(variables)},
            "export": {k: v for k, v in metadata.items() if k not in own},
            "signatures": {name: signature_description(function)
                           for name, function in sorted(loaded.signatures.items())}}


# ------------------------------------------------------------------------ as text


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
        else str(value)


def format_info(info: dict[str, Any]) -> str:
    """The description as sections of `key  value` lines."""
    kind = "training run" if info["kind"] == "run" else f"export (version {info['version']})"
    lines = [f"{info['path']}: {kind} of task {info['task']}"]
    if info["kind"] == "run":
        lines.append(f"  {'finished' if info['finished'] else 'not finished (resumable)'}")
    else:
        lines.append(f"  exported {info['exported_at']} with "
                     + ", ".join(f"{k} {v}" for k, v in info["environment"].items()))

    def section(title: str, values: dict[str, Any]) -> None:
        if not values:
            return
        lines.extend(["", title])
        width = max(map(len, values)) + 2
        lines.extend(f"  {key:<{width}}{_value(value)}" for key, value in values.items())

    section("Settings", info["settings"])
    resolved = info["resolved"]
    if isinstance(resolved.get("training"), dict):  # an export: training and serving
        section("Resolved (training)", resolved["training"])
        section("Resolved (serving)", resolved.get("serving", {}))
    else:
        section("Resolved", resolved)
    section("Tokenizers and data sides", info["inputters"])
    section("Validation metrics", info["metrics"])
    section("Export", info.get("export", {}))
    lines.extend(["", format_model(info["model"]) if "layers" in info["model"]
                  else f"Model: {info['model']['parameters']:,} parameters"])
    lines.extend(["", "Signatures"])
    for name, signature in info["signatures"].items():
        lines.append(f"  {name}")
        for direction in ("inputs", "outputs"):
            for key, spec in signature[direction].items():
                shape = "scalar" if spec["shape"] == [] else (
                    "[" + ", ".join("?" if d == -1 else str(d) for d in spec["shape"]) + "]"
                    if spec["shape"] is not None else "any shape")
                lines.append(f"    {direction[:-1]:<7}{key}: {spec['dtype']} {shape}")
    return "\n".join(lines)
