"""Container images: the registry-free base image (mmdebstrap + docker import)."""
