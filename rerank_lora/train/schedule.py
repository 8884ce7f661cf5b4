"""Which steps are checkpoints: step 0, then every `every` steps and/or the listed `steps`, and the last."""

from rerank_lora.errors import InputError, check_int


def checkpoint_steps(max_steps: int, every: int | None = None, steps=(), final: bool = False) -> list[int]:
    """Step 0, then every `every` steps and/or the listed `steps`, and the last step if `final`."""
    chosen = {0}
    if every:
        check_int("schedule.every", every, null="no periodic checkpoints")
        chosen |= set(range(every, max_steps + 1, every))
    listed = list(steps or [])
    beyond = [s for s in listed if not isinstance(s, int) or not 0 <= s <= max_steps]
    if beyond:
        raise InputError(
            f"schedule.steps {beyond} lie outside the run's length; accepted: integers 0..trainer.max_steps={max_steps}"
        )
    chosen |= set(listed)
    if final:
        chosen.add(max_steps)
    return sorted(chosen)
