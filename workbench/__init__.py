"""The `workbench` command line: `workbench app` starts the app, `workbench sweep` runs dataset sweeps."""
