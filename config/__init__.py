"""Default configuration files shipped with local-brain (installed as local_brain.defaults)."""
