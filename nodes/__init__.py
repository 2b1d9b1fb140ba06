"""Built-in node types, one module per family. Installed as `flowboard.nodes`."""
