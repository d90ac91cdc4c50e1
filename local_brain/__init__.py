"""local-brain: answer questions about a repository with local models."""

__version__ = "0.1.0"
