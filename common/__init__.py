"""Code shared by the agent, the collector and the CLI."""

__version__ = "0.1.0"
