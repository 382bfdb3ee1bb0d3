"""The generated messages (dclab_pb2, committed), with a clear error when
they are missing."""

try:
    from networking_dclab import dclab_pb2 as pb  # noqa: F401
except ImportError as e:  # pragma: no cover - a broken install
    raise ImportError(
        "networking_dclab.dclab_pb2 is missing: it is committed beside this file; "
        "regenerate it with the repository's scripts/gen-proto.sh") from e
