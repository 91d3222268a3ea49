"""The command line: `frugal` and its subcommands, their loading of `frugal.toml`, and presentation."""
