"""The `fleetlog` operator CLI: one module per family of subcommands."""
