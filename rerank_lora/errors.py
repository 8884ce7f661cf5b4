"""The errors a command reports in one line: bad user input (a config value, a data file, a model that cannot be
had) and a training run that diverged."""


class InputError(ValueError):
    """Raised with a message that names what was wrong and what is accepted."""


def check_int(key: str, value, least: int = 1, why: str = "", null: str | None = None) -> None:
    """`value` is an integer >= least (a bool is not one), or None where `null` says what None means; else one
    InputError naming the key, what is accepted, `why` and the meaning of null."""
    if value is None and null is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        notes = "; ".join(note for note in (why, f"null: {null}" if null else "") if note)
        raise InputError(f"{key}={value!r}; accepted: an integer >= {least}" + (f" ({notes})" if notes else ""))


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
