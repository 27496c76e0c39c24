"""LocalStack Lambda runtime executor that runs provided.* functions as local subprocesses (no Docker)."""

__version__ = "0.1.0"
