"""The one error type for bad user input: a config value, a data file, a model that cannot be had."""


class InputError(ValueError):
    """Raised with a message that names what was wrong and what is accepted."""
