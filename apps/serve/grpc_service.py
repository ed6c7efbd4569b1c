"""TF Serving's gRPC services on `grpc.aio`, through the official `tensorflow-serving-api` protos.

`PredictionService` (Predict, GetModelMetadata) and `ModelService` (GetModelStatus), so
the stock `PredictionServiceStub` / `ModelServiceStub` work unchanged. The rest of the
API (Classify, Regress, MultiInference, config reloads) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from apps.serve.errors import InvalidArgument, ServingError
from apps.serve.service import Service
from apps.serve.signatures import Signature

STATUS = {name: getattr(grpc.StatusCode, name) for name in grpc.StatusCode.__members__}


async def _abort(context: grpc.aio.ServicerContext, error: ServingError) -> None:
    await context.abort(STATUS.get(error.code, grpc.StatusCode.INTERNAL), error.message)


def _version(spec) -> int | None:
    if spec.version_label:
        raise InvalidArgument("Version labels are not supported by apps serve: set version")
    return spec.version.value if spec.HasField("version") else None


def decode_inputs(
    request: predict_pb2.PredictRequest, signature: Signature
) -> dict[str, np.ndarray]:
    """TensorProtos -> arrays, checking each dtype against the signature (TF Serving does too)."""
    inputs = {}
    for key, proto in request.inputs.items():
        spec = signature.inputs.get(key)
        if spec is not None and proto.dtype != spec.dtype.as_datatype_enum:
            raise InvalidArgument(
                f"Input '{key}' of signature '{signature.name}' expects {spec.dtype.name}, "
                f"got {tf.as_dtype(proto.dtype).name if proto.dtype else 'no dtype'}"
            )
        try:
            inputs[key] = tf.make_ndarray(proto)
        except Exception as exc:  # noqa: BLE001 - a malformed TensorProto
            raise InvalidArgument(f"Input '{key}' is not a valid TensorProto: {exc}") from None
    return inputs


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def Predict(self, request, context):  # noqa: N802 - the proto's method name
        try:
            spec = request.model_spec
            loaded = self.service.find(spec.name, _version(spec))
            signature = loaded.signature(spec.signature_name)
            inputs = decode_inputs(request, signature)
            outputs = await self.service.predict(loaded, signature, inputs)
            wanted = list(request.output_filter) or sorted(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise InvalidArgument(f"output_filter names unknown outputs: {', '.join(unknown)}")
        except ServingError as error:
            await _abort(context, error)
            return None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        response.model_spec.signature_name = signature.name
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    async def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise InvalidArgument(
                    f"Metadata field(s) must be exactly ['signature_def'], got {fields}"
                )
            loaded, signature_map = self.service.metadata(
                request.model_spec.name, _version(request.model_spec)
            )
        except ServingError as error:
            await _abort(context, error)
            return None
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    async def Classify(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify is not supported: use Predict")

    async def Regress(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not supported: use Predict")

    async def MultiInference(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def GetModelStatus(self, request, context):  # noqa: N802
        try:
            return self.service.status(request.model_spec.name, _version(request.model_spec))
        except ServingError as error:
            await _abort(context, error)
            return None

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "Config reloads are not supported: edit models.config, it is polled",
        )


def make_server(service: Service, max_message_bytes: int) -> grpc.aio.Server:
    """A grpc.aio server with both services; incoming messages capped like REST bodies."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
    return server
