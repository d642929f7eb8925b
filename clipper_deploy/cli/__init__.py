"""Invoke task collections, assembled by tasks.py at the project root.

Tasks stay thin: the work lives in the library.
"""
