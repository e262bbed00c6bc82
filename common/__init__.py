"""Code shared by the agent, the collector and the CLI.

Comments across the code cite the product's user-facing contract as "contract §N": the sections of
docs/contract.md. How the rooms fit together and which way they import: docs/architecture.md.
"""

__version__ = "0.1.0"
