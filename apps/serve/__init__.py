"""A local model server that answers TensorFlow Serving's REST and gRPC APIs.

`registry` loads SavedModel versions, `batching` groups concurrent requests, `rest` and
`grpc_service` speak the two protocols, `server` runs them together, `cli` is `apps serve`
and `apps models`. Loading a SavedModel runs its code: serve only models you trust.
"""
