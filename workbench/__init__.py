"""The `workbench` command line: sweeps over datasets today; room for `workbench app` and `workbench export`."""
