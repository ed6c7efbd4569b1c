"""Which model versions are served: load, warm up, switch, and keep polling the base path.

As TF Serving does: only numeric version directories count, the newest is served by
default (or what a `models.config` `model_version_policy` asks for), and a new version
replaces the old one only after it has loaded and answered a warm-up request. A version
that fails is reported in its status (state END with the error) and never displaces a
working one; it is retried only when its files change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2

from apps.errors import AppError
from apps.export import load_saved_model
from apps.layout import MODELS_CONFIG, list_versions
from apps.serve.errors import InvalidArgument, NotFound, ServingError, Unavailable
from apps.serve.signatures import SERVING_DEFAULT, Signature, read_signature_defs

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's own cap


@dataclass
class LoadedVersion:
    """One loaded SavedModel version: its signatures, ready to call."""

    name: str
    version: int
    path: Path
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    signatures: dict[str, Signature]
    module: Any = None  # the loaded object; keeps its variables and resources alive
    batchers: dict[str, Any] = field(default_factory=dict)  # filled in by the service

    def signature(self, name: str) -> Signature:
        name = name or SERVING_DEFAULT
        if name not in self.signatures:
            raise InvalidArgument(
                f'Serving signature name: "{name}" not found in signature def; model '
                f"'{self.name}' version {self.version} has {', '.join(sorted(self.signatures))}"
            )
        return self.signatures[name]


@dataclass
class VersionStatus:
    """TF Serving's ModelVersionStatus: state, and the error when a load failed."""

    version: int
    state: str = "START"  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class Policy:
    """`model_version_policy`: latest N (the default, N=1), all, or specific versions."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, on_disk: list[int], failed: set[int]) -> list[int]:
        usable = [v for v in on_disk if v not in failed]
        if self.kind == "all":
            return usable
        if self.kind == "specific":
            return [v for v in usable if v in self.versions]
        return sorted(usable)[-max(1, self.num_versions) :]


@dataclass
class _Model:
    name: str
    path: Path
    policy: Policy = Policy()
    loaded: dict[int, LoadedVersion] = field(default_factory=dict)
    status: dict[int, VersionStatus] = field(default_factory=dict)
    failed: dict[int, tuple] = field(default_factory=dict)  # version -> fingerprint that failed


def load_version(name: str, version: int, path: Path) -> LoadedVersion:
    """Load a SavedModel version; tensorflow-text first, so its ops are registered.

    A GPU-only export on a host without a GPU is refused before loading, with the
    reason as the version's error (its cuDNN kernels would fail on the first request).
    """
    import tensorflow_text  # noqa: F401  (SentencePiece ops for the tokenisers in the graphs)

    from apps import metadata
    from apps.export import check_runs_here

    check_runs_here(metadata.read(path), path)
    signature_defs = read_signature_defs(path)
    module = load_saved_model(path, tags=["serve"])
    signatures = {
        key: Signature(key, signature_defs[key], function)
        for key, function in module.signatures.items()
        if key in signature_defs
    }
    if not signatures:
        raise ValueError(f"{path} has no serving signatures")
    return LoadedVersion(name, version, Path(path), signature_defs, signatures, module)


def warm_up(loaded: LoadedVersion) -> None:
    """Run one request per signature (or the recorded ones in assets.extra) before serving.

    Made-up inputs may be refused by a model as invalid (a WAV decoder given text, say):
    that still proves the graph runs. Any other failure fails the load.
    """
    recorded = read_warmup_requests(loaded.path)
    if recorded:
        for signature_name, inputs in recorded:
            loaded.signature(signature_name).run(inputs)
        return
    for signature in loaded.signatures.values():
        try:
            signature.run(signature.warm_up_inputs())
        except ServingError as exc:  # from the graph, TF's InvalidArgumentError has this code
            if exc.code != InvalidArgument.code:
                raise
            log.info(
                "Warm-up of %s/%s %s: inputs refused (%s)",
                loaded.name,
                loaded.version,
                signature.name,
                exc.message[:120],
            )


def read_warmup_requests(path: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Predict requests recorded in TF Serving's warm-up file (PredictionLog TFRecords)."""
    file = Path(path) / WARMUP_FILE
    if not file.is_file():
        return []
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(file)).take(MAX_WARMUP_RECORDS):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") == "predict_log":
            request = entry.predict_log.request
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            requests.append((request.model_spec.signature_name, inputs))
    return requests


def read_policies(base_path: Path) -> dict[str, tuple[Path, Policy]]:
    """Model name -> (local directory, policy) from `BASE/models.config`, if there is one.

    A `base_path` that does not exist here (such as `/models/<name>`, the path inside
    the Docker image) means `BASE/<name>`.
    """
    config_file = Path(base_path) / MODELS_CONFIG
    if not config_file.is_file():
        return {}
    from tensorflow_serving.config import model_server_config_pb2

    try:
        config = text_format.Parse(
            config_file.read_text(encoding="utf-8"), model_server_config_pb2.ModelServerConfig()
        )
    except (text_format.ParseError, UnicodeDecodeError, OSError) as exc:
        log.warning("Ignoring %s: %s", config_file, exc)
        return {}
    found = {}
    for entry in config.model_config_list.config:
        local = Path(entry.base_path) if entry.base_path else None
        if local is None or not local.is_dir():
            local = Path(base_path) / entry.name
        choice = entry.model_version_policy.WhichOneof("policy_choice")
        policy = Policy()
        if choice == "all":
            policy = Policy("all")
        elif choice == "specific":
            policy = Policy(
                "specific", versions=tuple(entry.model_version_policy.specific.versions)
            )
        elif choice == "latest":
            policy = Policy("latest", max(1, entry.model_version_policy.latest.num_versions))
        found[entry.name] = (local, policy)
    return found


def fingerprint(path: Path) -> tuple:
    """What must change before a failed version is tried again."""
    parts = []
    for name in ("saved_model.pb", "variables/variables.index"):
        try:
            stat = (Path(path) / name).stat()
            parts.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            parts.append((name, None, None))
    return tuple(parts)


class ModelRegistry:
    """Every model under a base path, with its versions' states; polled in a thread."""

    def __init__(
        self,
        base_path: Path,
        poll_seconds: float = 1.0,
        loader: Callable[[str, int, Path], LoadedVersion] = load_version,
        warmer: Callable[[LoadedVersion], None] = warm_up,
    ) -> None:
        self.base_path = Path(base_path)
        self.poll_seconds = poll_seconds
        self._loader = loader
        self._warmer = warmer
        self._models: dict[str, _Model] = {}
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The version to serve: the given one, else the newest available."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Servable not found for request: model '{name}' is not served")
            if version is not None:
                if version in model.loaded:
                    return model.loaded[version]
                status = model.status.get(version)
                if status is not None and status.state in ("START", "LOADING"):
                    raise Unavailable(f"Version {version} of model '{name}' is still loading")
                if status is not None and status.error_message:
                    raise NotFound(
                        f"Version {version} of model '{name}' failed to load: "
                        f"{status.error_message}"
                    )
                raise NotFound(f"Servable not found for request: Specific({name}, {version})")
            if model.loaded:
                return model.loaded[max(model.loaded)]
            if any(s.state in ("START", "LOADING") for s in model.status.values()):
                raise Unavailable(f"Model '{name}' is loading: retry shortly")
            errors = [
                f"version {v}: {s.error_message}"
                for v, s in sorted(model.status.items())
                if s.error_message
            ]
            raise NotFound(
                f"Servable not found for request: Latest({name})"
                + (f"; {'; '.join(errors)}" if errors else "")
            )

    def statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version states, newest first, as GetModelStatus reports them."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Could not find any versions of model {name}")
            if version is not None:
                if version not in model.status:
                    raise NotFound(f"Could not find version {version} of model {name}")
                return [_copy(model.status[version])]
            return [_copy(model.status[v]) for v in sorted(model.status, reverse=True)]

    def available(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(m.loaded) for name, m in sorted(self._models.items())}

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        """One scan of the base path: load what the policies want, then unload the rest."""
        with self._poll_lock:
            policies = read_policies(self.base_path)
            found = self._discover(policies)
            with self._lock:
                for name in set(self._models) - set(found):
                    self._retire(self._models.pop(name))
                for name, (path, policy) in found.items():
                    model = self._models.setdefault(name, _Model(name, path))
                    model.path, model.policy = path, policy
            for name in sorted(found):
                self._update(self._models[name])

    def _discover(
        self, policies: Mapping[str, tuple[Path, Policy]]
    ) -> dict[str, tuple[Path, Policy]]:
        found: dict[str, tuple[Path, Policy]] = {}
        if self.base_path.is_dir():
            for child in sorted(self.base_path.iterdir()):
                if child.is_dir() and not child.name.startswith(".") and list_versions(child):
                    found[child.name] = (child, Policy())
        for name, (path, policy) in policies.items():
            if name in found or list_versions(path):
                found[name] = (path, policy)
        return found

    def _update(self, model: _Model) -> None:
        on_disk = list_versions(model.path)
        with self._lock:
            for version, print_ in list(model.failed.items()):
                if version not in on_disk or fingerprint(model.path / str(version)) != print_:
                    del model.failed[version]  # changed or gone: worth another try
            for version in list(model.status):
                if version not in on_disk and version not in model.loaded:
                    del model.status[version]
        for _ in range(len(on_disk) + 1):  # a failure can make an older version wanted
            wanted = model.policy.choose(on_disk, set(model.failed))
            missing = sorted(set(wanted) - set(model.loaded), reverse=True)
            if not missing:
                break
            for version in missing:
                self._load(model, version)
        wanted = set(model.policy.choose(on_disk, set(model.failed)))
        with self._lock:
            for version in sorted(set(model.loaded) - wanted):
                if version in on_disk and not (set(wanted) & set(model.loaded)):
                    continue  # keep serving something until a wanted version is up
                del model.loaded[version]
                model.status[version] = VersionStatus(version, "END")
                log.info("Unloaded %s version %d", model.name, version)

    def _load(self, model: _Model, version: int) -> None:
        path = model.path / str(version)
        print_ = fingerprint(path)
        with self._lock:
            model.status[version] = VersionStatus(version, "LOADING")
        try:
            loaded = self._loader(model.name, version, path)
            self._warmer(loaded)
        except Exception as exc:  # noqa: BLE001 - any failure is this version's status
            message = (
                exc.message if isinstance(exc, ServingError | AppError)
                else f"{type(exc).__name__}: {exc}"
            )
            message = " ".join(message.split())[:500]
            log.error("Version %d of model %s failed to load: %s", version, model.name, message)
            with self._lock:
                model.failed[version] = print_
                model.status[version] = VersionStatus(version, "END", "UNKNOWN", message)
            return
        with self._lock:
            model.loaded[version] = loaded
            model.status[version] = VersionStatus(version, "AVAILABLE")
        log.info("Serving %s version %d from %s", model.name, version, path)

    def _retire(self, model: _Model) -> None:
        for version in list(model.loaded):
            log.info("Unloaded %s version %d (its directory is gone)", model.name, version)
        model.loaded.clear()

    def start(self) -> None:
        """Poll every `poll_seconds` in a daemon thread (after a first poll by the caller)."""
        if self._thread is not None or self.poll_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a bad scan must not end polling
                log.exception("Polling %s failed", self.base_path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None


def _copy(status: VersionStatus) -> VersionStatus:
    return VersionStatus(status.version, status.state, status.error_code, status.error_message)
