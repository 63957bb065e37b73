"""weightpack's packaging side: recipes, sources, archives, manifests, the pipeline and the `pack` CLI."""

__version__ = "0.1.0"
