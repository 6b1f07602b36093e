"""The gRPC API's protobuf definitions (replate/v1/replate.proto) and the Python modules generated from them.

After editing a .proto, regenerate from the repository root and commit the output (a test checks they agree):
    python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \\
        gateway/proto/replate/v1/replate.proto
"""
