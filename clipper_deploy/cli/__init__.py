"""Invoke task collections; tasks.py at the project root assembles them. Tasks stay thin: the work lives in the library."""
