"""clipper-deploy: put a Python prediction function into production on your own Docker hosts."""

__version__ = "0.1.0"
