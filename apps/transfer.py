"""`--init-from`: start a run from the weights of another run, of this task or another.

A language model pretrained on unlabelled text and a classifier trained on labels
share their lower layers: the token embedding and the recurrent encoder
(`apps.layers.RecurrentEncoder`). A task names those layers in one vocabulary
(`Task.shared_layers`: "embedding", "encoder/0/forward", "encoder/0/backward", ...),
so a run can load whatever it shares with the source: an LM's forward layers into a
bidirectional classifier (whose backward layers start fresh), a classifier into a
classifier, an LM into an LM (fine-tuning on the task's own text).

A task says where its weights may come from (`Task.init_starts`: one `Start` per
option): the whole model from `--init-from`, or, for a translator, each side from
its own language model (`--init-encoder-from`, `--init-decoder-from`), with the
source's layer names renamed to the model's. A source is a training run or an
exported SavedModel (`Source`): an export keeps the Keras model's variables in the
model's own order, so the source task rebuilds its model from the export's metadata
and takes them back in that order; its tokenizers are read out of the graph. The
new run takes over the source's tokenizer where the start says so (its ids are what
the embedding rows mean) and records in `config.json` (`init`) which layers were
loaded and which start fresh. A resumed run restores its own backup and never loads
the source again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
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
EXPORT_VARIABLE = "variables/{}/.ATTRIBUTES/VARIABLE_VALUE"  # the export's variables[i]


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


@dataclass
class Start:
    """One option that names a source, and what the new model takes from it.

    `sides`: the new run's inputter sides that take over a tokenizer of the source
    ({ours: theirs}); `rename`: the source's shared-layer name -> ours (None: not
    used); `tasks`: the source tasks it accepts (empty: any); `vocabulary_layers`:
    our layers that read or write the output vocabulary of `vocabulary_side`, loaded
    only when that side's vocabulary is the source's (a recogniser fitting its own);
    `forced`: settings the start implies (a translator's separate vocabularies).
    """

    flag: str
    setting: str
    path: str
    role: str | None = None  # the record's key for one of several starts
    sides: dict[str, str] = field(default_factory=lambda: {"text": "text"})
    rename: Callable[[str], str | None] = field(default=lambda name: name)
    tasks: tuple[str, ...] = ()
    vocabulary_layers: tuple[str, ...] = ()
    vocabulary_side: tuple[str, str] = ("text", "text")  # (ours, theirs)
    forced: dict[str, Any] = field(default_factory=dict)
    adopts: tuple[str, ...] = ()  # settings taken from the source unless given (beyond sizes)
    tokenizer_settings: tuple[str, ...] = TOKENIZER_SETTINGS  # the source's, or an error
    forced_reason: str = ""  # why `forced` (the end of a sentence)

    def source(self) -> Source:
        found = Source.open(self.path, self.flag)
        if self.tasks and found.task_name not in self.tasks:
            raise ConfigError(f"{self.flag} '{found.path}' is a {found.task_name} model; "
                              f"{self.flag} takes a model of task {' or '.join(self.tasks)}.")
        return found


def whole_model(settings, **options) -> list[Start]:
    """The common case: `--init-from` names one source for the whole model."""
    path = getattr(settings, "init_from", None)
    return [Start("--init-from", "init_from", path, **options)] if path else []


def starts(task, settings) -> list[Start]:
    return task.init_starts(settings) if task is not None else whole_model(settings)


@dataclass
class Source:
    """The run or export a `Start` names: its folder, kind, task and settings."""

    path: Path
    kind: str  # "run" or "saved_model"
    config: dict[str, Any]
    inputters: dict[str, dict[str, Any]]  # an export's inputter metadata (a run's: {})
    flag: str = "--init-from"

    @classmethod
    def open(cls, path: str | Path, flag: str = "--init-from") -> Source:
        path = Path(path)
        if not path.exists():
            raise ModelPathError(f"{flag} '{path}' does not exist: give a training run "
                                 "directory or an exported model.")
        try:
            kind, found = locate_model(path)
        except ModelPathError as error:
            raise ModelPathError(f"{flag}: {error}") from None
        if kind == "run":
            from apps.layout import RunDirectory

            return cls(found, kind, RunDirectory(found).read_config(), {}, flag)
        from apps import metadata as metadata_file

        metadata = metadata_file.read(found)
        if metadata is None:
            raise ModelPathError(f"{flag} '{found}' is a SavedModel without "
                                 "assets/metadata.json (not exported by apps): give the "
                                 "training run instead.")
        return cls(found, kind, {**metadata.config, "task": metadata.task},
                   metadata.inputters, flag)

    @property
    def task_name(self) -> str | None:
        return self.config.get("task")

    def task(self):
        from apps.info import task_named

        return task_named(self.task_name, self.path)

    # -- tokenizers ------------------------------------------------------------------------

    def tokenizer_files(self) -> dict[str, str]:
        """The source's text sides -> their tokenizer file names."""
        if self.kind == "saved_model":
            return {side: entry["file"] for side, entry in self.inputters.items()
                    if "vocab_size" in entry and str(entry.get("file", "")).endswith(".model")}
        task = self.task()
        from apps import runner

        settings = runner.settings_from_config(task.settings_class, self.config)
        from pipelines.inputters import TextInputter

        return {side: inputter.filename for side, inputter in
                task.make_inputters(settings).items() if isinstance(inputter, TextInputter)}

    def tokenizer(self, side: str):
        """The source's tokenizer of `side` (`pipelines.tokenizer.Tokenizer`)."""
        from pipelines.tokenizer import Tokenizer

        files = self.tokenizer_files()
        if side not in files:
            raise ModelPathError(f"{self.flag} '{self.path}' has no tokenizer of a '{side}' "
                                 "side to take over.")
        if self.kind == "run":
            path = self.path / files[side]
            if not path.is_file():
                raise ModelPathError(f"{self.flag} '{self.path}' holds no {files[side]} to take "
                                     "over.")
            return Tokenizer.load(path)
        protos = export_tokenizers(self.path)
        unique = list(dict.fromkeys(files.values()))
        if len(protos) != len(unique):
            raise ModelPathError(f"{self.flag} '{self.path}' holds {len(protos)} tokenizer(s) "
                                 f"in its graph where its metadata names {len(unique)}: export "
                                 "its run again.")
        return Tokenizer(protos[unique.index(files[side])])

    # -- weights ---------------------------------------------------------------------------

    def model(self) -> keras.Model:
        """The source's Keras model with its weights: a run's best epoch, or an export's
        variables put back into the model its task builds from the export's settings."""
        from apps import runner

        task = self.task()
        if self.kind == "run":
            return runner.load(task, self.path).model
        settings = runner.settings_from_config(task.settings_class, self.config)
        with tempfile.TemporaryDirectory() as folder:
            self._write_inputters(Path(folder))
            inputters = runner.load_inputters(task, settings, Path(folder))
        model = task.build_model(settings, inputters)
        import tensorflow as tf

        reader = tf.train.load_checkpoint(str(self.path / "variables" / "variables"))
        shapes = reader.get_variable_to_shape_map()
        count = sum(1 for key in shapes if re.fullmatch(EXPORT_VARIABLE.format(r"\d+"), key))
        if count != len(model.variables):
            raise ModelPathError(f"{self.flag} '{self.path}' holds {count} variables where its "
                                 f"{task.title} has {len(model.variables)}: export its run "
                                 "again with this version of apps.")
        for index, variable in enumerate(model.variables):
            value = reader.get_tensor(EXPORT_VARIABLE.format(index))
            if tuple(value.shape) != tuple(variable.shape):
                raise ModelPathError(f"{self.flag} '{self.path}': variable {index} "
                                     f"({variable.path}) has shape {tuple(value.shape)} there "
                                     f"and {tuple(variable.shape)} in the model its settings "
                                     "build: export its run again with this version of apps.")
            variable.assign(value)
        return model

    def _write_inputters(self, folder: Path) -> None:
        """The export's inputters as a run directory keeps them (tokenizers from the
        graph, labels and audio settings from the metadata), for `Inputter.load`."""
        from pipelines.audio import AudioInputter
        from pipelines.inputters import LabelsInputter

        files = self.tokenizer_files()
        for side, entry in self.inputters.items():
            name = entry.get("file")
            if side in files:
                self.tokenizer(side).save(folder / name)
            elif name == LabelsInputter.filename:
                (folder / name).write_text(json.dumps(
                    {"labels": entry["labels"], "counts": [1] * len(entry["labels"])}))
            elif name == AudioInputter.filename:
                (folder / name).write_text(json.dumps(
                    {key: entry[key] for key in AudioInputter().config() if key in entry}))


def export_tokenizers(path: Path) -> list[bytes]:
    """The SentencePiece models an export's graph holds, in the order they were tracked
    (`apps.runner.export`: the inputters' order, a shared one once). tensorflow-text
    keeps each as the `model` attribute of the op that creates its resource."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0]
    nodes = graph.object_graph_def.nodes
    functions = {f.signature.name: f for f in graph.graph_def.library.function}

    def child(node, name: str) -> int | None:
        return next((c.node_id for c in node.children if c.local_name == name), None)

    found = []
    assets = child(nodes[0], "_misc_assets")
    for ref in nodes[assets].children if assets is not None else []:
        creator = child(nodes[ref.node_id], "_create_resource")
        if creator is None:
            continue
        for name in nodes[creator].function.concrete_functions:
            found += [node.attr["model"].s for node in functions[name].node_def
                      if node.op == "SentencepieceOp"]
    return found


# ----------------------------------------------------------------------------- settings


def explicit_settings(settings, given: set[str] | None) -> set[str]:
    """The settings the user chose: `given` (flags typed and config-file keys) when the
    caller knows it, else those that differ from the class default."""
    if given is not None:
        return set(given)
    defaults = {f.name: f.default for f in dataclasses.fields(settings)}
    return {name for name, default in defaults.items() if getattr(settings, name) != default}


def adopt_tokenizer(settings, given: set[str] | None = None, task=None):
    """`settings` with what the task's starts (`Task.init_starts`) imply: the tokenizer
    settings of a source whose tokenizer is taken over (a contradicting --tokenizer or
    --vocab-size is one sentence), the settings a start forces, and the source's model
    sizes where the user gave none (one the user gave wins: a deeper model, say, whose
    extra layers start fresh). Two sources that disagree on a size are refused."""
    found = starts(task, settings)
    if not found:
        return settings
    chosen = explicit_settings(settings, given)
    names = {f.name for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {}
    origin: dict[str, tuple[Start, Path, Any]] = {}  # a size -> where it came from
    for start in found:
        source = start.source()
        hard = {key: source.config.get(key) for key in start.tokenizer_settings}
        for key, theirs in {**hard, **start.forced}.items():
            if theirs is None or key not in names or getattr(settings, key) == theirs:
                continue
            if key in chosen:
                shown = getattr(settings, key)
                word = (flag_name(key) if shown else "--no-" + key.replace("_", "-")) \
                    if isinstance(shown, bool) else f"{flag_name(key)} {shown}"
                why = (f"whose tokenizer ({theirs}) the run takes over" if key in hard
                       else start.forced_reason)
                leave = word if isinstance(shown, bool) else flag_name(key)
                raise ConfigError(f"{word} contradicts {start.flag} '{source.path}', {why}: "
                                  f"leave {leave} out.")
            changes[key] = theirs
        for key in SIZE_SETTINGS + start.adopts:
            theirs = source.config.get(key)
            if key not in names or key in chosen or theirs is None:
                continue
            if key in origin and origin[key][2] != theirs:
                other, path, value = origin[key]
                raise ConfigError(
                    f"{other.flag} '{path}' and {start.flag} '{source.path}' differ in "
                    f"{key} ({value} and {theirs}) and this model has one: give "
                    f"{flag_name(key)} (the layers it does not fit start fresh, or are refused).")
            origin[key] = (start, source.path, theirs)
            if getattr(settings, key) != theirs:
                changes[key] = theirs
    changes = {key: value for key, value in changes.items() if getattr(settings, key) != value}
    if changes:
        log.info("From %s: %s.", ", ".join(f"{s.flag} {s.path}" for s in found),
                 ", ".join(f"{key} {value}" for key, value in changes.items()))
    return dataclasses.replace(settings, **changes) if changes else settings


def take_tokenizer(settings, inputters: dict, task=None) -> bool:
    """Load the sources' tokenizers into the inputters their starts name (before the
    others are fitted); True when one was taken over."""
    taken = False
    for start in starts(task, settings):
        if not start.sides:
            continue
        source = start.source()
        for ours, theirs in start.sides.items():
            inputter = inputters[ours]
            inputter.use(source.tokenizer(theirs))
            inputter.model_type = source.config.get("tokenizer", inputter.model_type)
            inputter.taken_over = taken = True
    return taken


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


class Mismatch(Exception):
    """A weight of the source that does not fit ours: (our weight, their shape)."""


class InputRows:
    """A recurrent layer whose input is a shared one `rows` wide (a token embedding)
    followed by more (a translator's attention context, Bahdanau): a source layer that
    reads the shared input alone fills the first `rows` rows of the input kernel, and
    the rows of the rest start fresh; a source of the same shape fills it all."""

    def __init__(self, layer, rows: int):
        self.layer, self.rows = layer, int(rows)

    weights = property(lambda self: self.layer.weights)

    def get_weights(self):
        return self.layer.get_weights()

    def fitted(self, values) -> list:
        out = []
        for weight, now, value in zip(self.layer.weights, self.layer.get_weights(), values,
                                      strict=True):
            value = np.asarray(value)
            if now.shape == value.shape:
                out.append(value)
            elif (weight.path.endswith("/kernel") and now.ndim == 2
                  and value.shape == (self.rows, now.shape[1])):
                now = now.copy()
                now[: self.rows] = value
                out.append(now)
            else:
                raise Mismatch(weight, value.shape)
        return out

    def set_weights(self, values):
        self.layer.set_weights(self.fitted(values))


def _fitted(layer, values) -> list:
    if isinstance(layer, InputRows):
        return layer.fitted(values)
    for weight, value in zip(layer.weights, values, strict=True):
        if tuple(weight.shape) != tuple(np.shape(value)):
            raise Mismatch(weight, tuple(np.shape(value)))
    return list(values)


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


def vocabulary(tokenizer) -> list[str]:
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]


def load_shared(task, model: keras.Model, settings, inputters: dict | None = None
                ) -> dict[str, Any]:
    """Copy the weights of every layer `model` shares with the sources of the task's
    starts into it; return what `config.json` records (`init`). A shape mismatch names
    the layer and both shapes; a source with nothing in common is refused."""
    ours = task.shared_layers(model)
    loaded: list[str] = []
    record: dict[str, Any] = {}
    found = starts(task, settings)
    for start in found:
        source = start.source()
        theirs = {}
        for name, layers in source.task().shared_layers(source.model()).items():
            if start.rename(name) is not None:
                theirs[start.rename(name)] = layers
        if start.vocabulary_layers and not _same_vocabulary(start, source, inputters):
            log.info("%s '%s' has another output vocabulary: %s start fresh.", start.flag,
                     source.path, ", ".join(start.vocabulary_layers))
            theirs = {k: v for k, v in theirs.items() if k not in start.vocabulary_layers}
        took = []
        for name, layers in ours.items():
            if name not in theirs or name in loaded:
                continue
            _check_cells(name, theirs[name][0], layers[0], start.flag, source.path)
            values = theirs[name][0].get_weights()
            for layer in layers:
                try:
                    layer.set_weights(_fitted(layer, values))
                except Mismatch as mismatch:
                    weight, shape = mismatch.args
                    raise ConfigError(
                        f"{start.flag} '{source.path}': layer {name} ({weight.path}) has "
                        f"shape {tuple(shape)} there and {tuple(weight.shape)} here: give this "
                        "run the source's sizes (--embedding-dim, --units, --cell).") from None
            took.append(name)
        if not took:
            raise ConfigError(f"{start.flag} '{source.path}' ({source.task_name}) shares no "
                              f"layer with this {task.title} (it has "
                              f"{', '.join(theirs) or 'none'}).")
        loaded += took
        if start.role:
            record.setdefault("sources", {})[start.role] = {"task": source.task_name,
                                                            "loaded": took}
        else:
            record["task"] = source.task_name
        log.info("Initialised from %s '%s' (%s): loaded %s.", start.flag, source.path,
                 source.task_name, ", ".join(took))
    fresh = [name for name in ours if name not in loaded]
    skip = _weight_paths(layer for name in ours for layer in ours[name])
    # (the sources' paths are the settings beside it, which exports cut to a name)
    record = {**record, "loaded": loaded, "fresh": fresh + _layer_names(model, skip)}
    log.info("Starting fresh: %s.", ", ".join(record["fresh"]) or "nothing")
    return record


def _same_vocabulary(start: Start, source: Source, inputters: dict | None) -> bool:
    ours, theirs = start.vocabulary_side
    if inputters is None or ours not in inputters:
        return False
    return vocabulary(inputters[ours].tokenizer) == vocabulary(source.tokenizer(theirs))


def _check_cells(name: str, theirs, ours, flag: str, path: Path) -> None:
    theirs, ours = getattr(theirs, "layer", theirs), getattr(ours, "layer", ours)
    if type(theirs) is not type(ours):
        raise ConfigError(f"{flag} '{path}': layer {name} is a {type(theirs).__name__} "
                          f"there and a {type(ours).__name__} here: train with the source's "
                          "--cell (and --tie-embeddings).")


# ---------------------------------------------------------------------------- fine-tuning


def depths(names) -> dict[str, int]:
    """Each shared layer's distance from the output (the task's own layers are 0): the
    top layer of a recurrent stack (encoder/<i>/..., a translator's decoder/<i>/...) 1,
    the one below 2, ..., the input layers (an embedding, a recogniser's front end) last."""
    levels = {name: int(name.split("/")[1]) for name in names
              if re.fullmatch(r"(encoder|decoder)/\d+/\w+", name)}
    top = max(levels.values(), default=-1)
    out = {}
    for name in names:
        if name in levels:
            out[name] = top + 1 - levels[name]
        elif name.endswith("embedding") or name.startswith("front/"):
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
