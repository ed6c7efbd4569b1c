"""One error type for every serving failure, carrying TF Serving's status code.

REST turns the code into an HTTP status and gRPC into a `grpc.StatusCode`, so both
protocols report the same failure the same way.
"""

from __future__ import annotations

from apps.errors import graph_assertion

# TF Serving's code -> HTTP status (model_servers/http_rest_api_handler.cc, ToHTTPStatusCode).
HTTP_STATUS = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
}


class ServingError(Exception):
    """A request that failed, with the TF Serving status code that says why."""

    code = "INTERNAL"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class ResourceExhausted(ServingError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class DeadlineExceeded(ServingError):
    code = "DEADLINE_EXCEEDED"


# Canonical status codes by number, as TensorFlow and gRPC share them.
CODE_NAMES = (
    "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS "
    "PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE "
    "UNIMPLEMENTED INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED"
).split()


def from_tf_error(exc: Exception) -> ServingError:
    """A ServingError for an exception raised while running a model.

    TensorFlow's OpErrors carry a canonical code; Python-side ValueError / TypeError
    (bad shapes or dtypes caught before the graph runs) are invalid arguments.
    """
    error_code = getattr(exc, "error_code", None)
    if isinstance(error_code, int) and 0 < error_code < len(CODE_NAMES):
        message = getattr(exc, "message", None) or str(exc)
        # a model's own check (tf.debugging.Assert) says one sentence: only that
        message = graph_assertion(message) or message
        return ServingError(message, CODE_NAMES[error_code])
    if isinstance(exc, ValueError | TypeError):
        return InvalidArgument(str(exc))
    return ServingError(f"{type(exc).__name__}: {exc}", "INTERNAL")
