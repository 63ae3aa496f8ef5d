"""Ready-made services, one module each; plain classes and functions that the CLI
(``nettools.cli``) only parses arguments for."""
