"""Networks. Import the submodules directly; this package imports nothing heavy itself."""
