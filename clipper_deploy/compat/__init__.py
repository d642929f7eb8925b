"""Adapters that let other tools drive clipper-deploy: :mod:`.clipper_admin` (Clipper's own
``clipper_admin`` client)."""
