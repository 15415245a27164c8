"""The domain core of livesale. Nothing in this package imports Flask."""
