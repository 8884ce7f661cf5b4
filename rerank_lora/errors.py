"""The errors a command reports in one line: bad user input (a config value, a data file, a model that cannot be
had) and a training run that diverged."""


class InputError(ValueError):
    """Raised with a message that names what was wrong and what is accepted."""


class TrainingDiverged(Exception):
    """A non-finite loss, weight or score: the job stops, and what was saved before stays its result."""
