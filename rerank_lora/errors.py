"""The errors a command reports in one line: bad user input (a config value, a data file, a model that cannot be
had) and a training run that diverged."""


class InputError(ValueError):
    """Raised with a message that names what was wrong and what is accepted."""


class TrainingDiverged(Exception):
    """A non-finite loss, weight or score: the job stops, and what was saved before stays its result."""


class DiskFull(Exception):
    """No space left while a file was written (rerank_lora/disk.py turns every library's way of saying so into
    this one error): what was finished stays, the partial file is gone, the same command resumes."""

    def __init__(self, path):
        self.path = path
        super().__init__(
            f"no space left on device while writing {path}; nothing finished was lost; free space and run the same "
            "command to resume"
        )
