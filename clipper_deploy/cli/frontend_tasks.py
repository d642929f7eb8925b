"""`invoke frontend.start|stop|status` (filled in by the serving work)."""
