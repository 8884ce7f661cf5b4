"""The W&B keys a job's run is logged under (evaluation/evaluator.py logs them through Lightning's WandbLogger):
one place for the dashboard to name them. The tests check each name against the runs as wandb reads them."""

STEP_AXIS = "trainer/global_step"
GRID_COLUMNS = ("model.name", "lora.rank", "targets.modules")  # the paper's axes, as config keys


def metric(split: str, measure: str) -> str:
    """The model's value of `measure` on `split` at a checkpoint step."""
    return f"{split}/{measure}"


def first_stage(split: str, measure: str) -> str:
    """The first stage's value, logged beside each checkpoint's so a curve shows it."""
    return f"{split}/first-stage/{measure}"
