"""`--init-from`: start a run from the weights of another run, of this task or another.

A language model pretrained on unlabelled text and a classifier trained on labels
share their lower layers: the token embedding and the recurrent encoder
(`apps.layers.RecurrentEncoder`). A task names those layers in one vocabulary
(`Task.shared_layers`: "embedding", "encoder/0/forward", "encoder/0/backward", ...),
so a run can load whatever it shares with the source: an LM's forward layers into a
bidirectional classifier (whose backward layers start fresh), a classifier into a
classifier, an LM into an LM (fine-tuning on the task's own text). The new run
takes over the source's tokenizer (its ids are what the embedding rows mean) and
records in `config.json` (`init`) which layers were loaded and which start fresh.
A resumed run restores its own backup and never loads the source again.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from apps.errors import ConfigError, ModelPathError
from apps.layout import locate_model

log = logging.getLogger(__name__)

TOKENIZER_SETTINGS = ("tokenizer", "vocab_size")
# Sizes taken from the source unless given: then its weights fit without repeating them.
SIZE_SETTINGS = ("cell", "units", "layers", "embedding_dim", "tie_embeddings")
TOKENIZER_FILE = "tokenizer.model"


@dataclass
class Source:
    """The run `--init-from` names: its directory, task and settings."""

    path: Path
    config: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> Source:
        path = Path(path)
        if not path.exists():
            raise ModelPathError(f"--init-from '{path}' does not exist: give a training run "
                                 "directory.")
        kind, found = locate_model(path)
        if kind != "run":
            raise ModelPathError(f"--init-from '{path}' is an exported model: give the training "
                                 "run directory it was exported from (it holds the weights "
                                 "and the tokenizer).")
        from apps.layout import RunDirectory

        return cls(found, RunDirectory(found).read_config())

    @property
    def task_name(self) -> str | None:
        return self.config.get("task")

    def load(self):
        """The source run as `Trained` (its best weights), through its own task."""
        from apps import runner
        from apps.info import task_named

        return runner.load(task_named(self.task_name, self.path), self.path)


def explicit_settings(settings, given: set[str] | None) -> set[str]:
    """The settings the user chose: `given` (flags typed and config-file keys) when the
    caller knows it, else those that differ from the class default."""
    if given is not None:
        return set(given)
    defaults = {f.name: f.default for f in dataclasses.fields(settings)}
    return {name for name, default in defaults.items() if getattr(settings, name) != default}


def adopt_tokenizer(settings, given: set[str] | None = None):
    """`settings` with the tokenizer settings of the `--init-from` run (its tokenizer is
    taken over; a contradicting --tokenizer or --vocab-size is one sentence) and its
    model sizes where the user gave none (one the user gave wins: a deeper model,
    say, whose extra layers start fresh)."""
    if not getattr(settings, "init_from", None):
        return settings
    source = Source.open(settings.init_from)
    chosen = explicit_settings(settings, given)
    changes = {}
    for key in TOKENIZER_SETTINGS:
        theirs = source.config.get(key)
        if theirs is None or getattr(settings, key) == theirs:
            continue
        if key in chosen:
            raise ConfigError(
                f"--{key.replace('_', '-')} {getattr(settings, key)} contradicts --init-from "
                f"'{source.path}', whose tokenizer ({theirs}) the run takes over: leave "
                f"--{key.replace('_', '-')} out.")
        changes[key] = theirs
    names = {f.name for f in dataclasses.fields(settings)}
    for key in SIZE_SETTINGS:
        theirs = source.config.get(key)
        if key in names and key not in chosen and theirs is not None \
                and getattr(settings, key) != theirs:
            changes[key] = theirs
    if changes:
        log.info("From --init-from %s: %s.", source.path,
                 ", ".join(f"{key} {value}" for key, value in changes.items()))
    return dataclasses.replace(settings, **changes) if changes else settings


def take_tokenizer(settings, inputters: dict, side: str = "text") -> bool:
    """Load the source run's tokenizer into `inputters[side]` (before fitting the other
    sides); True when it did."""
    if not getattr(settings, "init_from", None):
        return False
    source = Source.open(settings.init_from)
    if not (source.path / TOKENIZER_FILE).is_file():
        raise ModelPathError(f"--init-from '{source.path}' holds no {TOKENIZER_FILE} to take "
                             "over.")
    inputters[side].take_over(source.path)
    return True


# ------------------------------------------------------------------------------ weights


class WeightGroup:
    """Weights that belong to no layer of their own (a tied LM's output bias), shared
    like a layer."""

    def __init__(self, *variables):
        self.weights = list(variables)

    def get_weights(self):
        return [np.asarray(v.numpy()) for v in self.weights]

    def set_weights(self, values):
        for variable, value in zip(self.weights, values, strict=True):
            variable.assign(value)


def encoder_layers(encoder, prefix: str = "encoder") -> dict[str, list[keras.layers.Layer]]:
    """A `RecurrentEncoder`'s recurrent layers by shared name: encoder/<layer>/<direction>."""
    return {f"{prefix}/{layer}/{('forward', 'backward')[direction]}": [rnn]
            for layer, rnns in enumerate(encoder.rnns) for direction, rnn in enumerate(rnns)}


def merged(*parts: dict[str, list]) -> dict[str, list]:
    """Shared-layer maps joined (an ensemble's members: one name, several layers)."""
    out: dict[str, list] = {}
    for part in parts:
        for name, layers in part.items():
            out.setdefault(name, []).extend(layers)
    return out


def _weight_paths(layers) -> set[int]:
    return {id(v) for layer in layers for v in layer.weights}


def _layer_names(model: keras.Model, skip: set[int]) -> list[str]:
    """The model's other weights, named by their layer path (what starts fresh)."""
    names = []
    for variable in model.weights:
        if id(variable) in skip:
            continue
        path = variable.path.removeprefix(model.name + "/")
        name = path.rsplit("/", 1)[0] if "/" in path else path
        if name not in names:
            names.append(name)
    return names


def load_shared(task, model: keras.Model, settings) -> dict[str, Any]:
    """Copy the weights of every layer `model` shares with the `--init-from` run into
    it; return what `config.json` records (`init`). A shape mismatch names the layer
    and both shapes; a source with nothing in common is refused."""
    source = Source.open(settings.init_from)
    trained = source.load()
    from apps.info import task_named

    theirs = task_named(source.task_name, source.path).shared_layers(trained.model)
    ours = task.shared_layers(model)
    loaded, fresh = [], []
    for name, layers in ours.items():
        if name not in theirs:
            fresh.append(name)
            continue
        _check_cells(name, theirs[name][0], layers[0], source.path)
        values = theirs[name][0].get_weights()
        for layer in layers:
            for weight, value in zip(layer.weights, values, strict=True):
                if tuple(weight.shape) != tuple(np.shape(value)):
                    raise ConfigError(
                        f"--init-from '{source.path}': layer {name} ({weight.path}) has shape "
                        f"{tuple(np.shape(value))} there and {tuple(weight.shape)} here: give "
                        "this run the source's sizes (--embedding-dim, --units, --cell).")
            layer.set_weights(values)
        loaded.append(name)
    if not loaded:
        raise ConfigError(f"--init-from '{source.path}' ({source.task_name}) shares no layer "
                          f"with this {task.title} (it has {', '.join(theirs) or 'none'}).")
    skip = _weight_paths(layer for name in loaded for layer in ours[name])
    # (the source's path is the init_from setting beside it, which exports cut to a name)
    record = {"task": source.task_name, "loaded": loaded,
              "fresh": fresh + _layer_names(model, skip | _weight_paths(
                  layer for name in fresh for layer in ours[name]))}
    log.info("Initialised from %s (%s): loaded %s; starting fresh: %s.", source.path,
             source.task_name, ", ".join(loaded), ", ".join(record["fresh"]) or "nothing")
    return record


def _check_cells(name: str, theirs, ours, path: Path) -> None:
    if type(theirs) is not type(ours):
        raise ConfigError(f"--init-from '{path}': layer {name} is a {type(theirs).__name__} "
                          f"there and a {type(ours).__name__} here: train with the source's "
                          "--cell (and --tie-embeddings).")


# ---------------------------------------------------------------------------- fine-tuning


def depths(names) -> dict[str, int]:
    """Each shared layer's distance from the output (the task's own layers are 0): the
    top encoder layer 1, the one below 2, ..., the embedding last."""
    levels = {name: int(name.split("/")[1]) for name in names
              if name.startswith("encoder/") and name.split("/")[1].isdigit()}
    top = max(levels.values(), default=-1)
    out = {}
    for name in names:
        if name in levels:
            out[name] = top + 1 - levels[name]
        elif name == "embedding":
            out[name] = top + 2
        else:
            out[name] = 0
    return out


def layer_rates(task, model: keras.Model, settings, steps_per_epoch: int | None,
                loaded: list[str]) -> None:
    """Discriminative rates (`--lr-layer-decay`) and gradual unfreezing (`--freeze-epochs`)
    on the model's optimizer (`apps.schedule.LayerwiseAdam`), from the shared layers'
    depths: the loaded layers thaw from the top, one depth every --freeze-epochs."""
    decay, freeze = getattr(settings, "lr_layer_decay", 1.0), getattr(settings,
                                                                      "freeze_epochs", 0)
    if decay == 1.0 and not freeze:
        return
    if freeze and not steps_per_epoch:
        raise ConfigError("--freeze-epochs needs epochs of known length here: pass "
                          "--steps-per-epoch.")
    shared = task.shared_layers(model)
    depth = depths(shared)
    thawing = sorted({depth[name] for name in loaded if name in depth})
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if not hasattr(optimizer, "set_layer_rates"):
        raise ConfigError(f"The {task.title} trains with an optimizer without per-layer "
                          "rates: leave out --freeze-epochs and --lr-layer-decay.")
    rates, plan = [], []
    for name, layers in shared.items():
        start = (thawing.index(depth[name]) + 1) * freeze * steps_per_epoch \
            if freeze and name in loaded else 0
        factor = decay ** depth[name]
        plan.append(f"{name} x{factor:.3g}" + (f" from epoch {start // steps_per_epoch + 1}"
                                                 if start else ""))
        rates += [(v, factor, start) for layer in layers for v in layer.weights
                  if getattr(v, "trainable", True)]
    optimizer.set_layer_rates(rates)
    log.info("Per-layer rates: %s; the task's own layers x1 from epoch 1.", "; ".join(plan))
