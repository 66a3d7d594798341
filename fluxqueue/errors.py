"""Errors that reach the user as one clear line rather than a traceback."""


class ConfigError(Exception):
    """Bad flags, environment or files: printed as one line, exit status 2."""
