"""The generated messages (dclab_pb2), with a clear error when they were
never generated."""

try:
    from networking_dclab import dclab_pb2 as pb  # noqa: F401
except ImportError as e:  # pragma: no cover - a broken install
    raise ImportError(
        "networking_dclab.dclab_pb2 is missing: run "
        "`python3 -m networking_dclab.generate_proto` (needs protobuf-compiler), "
        "or install the package with pip, which generates it") from e
