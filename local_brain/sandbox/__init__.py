"""Running model-written code: a confined child process per step (see ``executor``)."""

from local_brain.sandbox.executor import SandboxError, SandboxExecutor, readable_python_paths

__all__ = ["SandboxError", "SandboxExecutor", "readable_python_paths"]
