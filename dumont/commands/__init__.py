"""One module per command group of the `dumont` CLI."""
