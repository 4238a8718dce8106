"""The one error type bad stack configuration raises (kept apart so config parsers in sub-packages can
raise it without importing infra.config)."""


class ConfigError(ValueError):
    """Stack configuration is invalid; the message names the key and what to do."""
