"""CLI subcommands beyond devices/profile/show: one module per command, each with `register(app)`."""
