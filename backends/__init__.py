"""Backends: one module per backend, each an exporter and a runtime model class."""
