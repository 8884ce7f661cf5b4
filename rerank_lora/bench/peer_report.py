"""The bench-peers report: its row names, the ratios of ours to each peer against their goals, the printed table."""

OURS_30, OURS_30_UNMERGED = "ours (30 layers)", "ours (30 layers, LoRA unmerged)"
OURS_30_COMPILED = "ours (30 layers, trainer.compile=true)"
TEVATRON = "Tevatron reranker trainer (30 layers)"
FLAG_DEFAULT, FLAG_TUNED = "FlagLLMReranker defaults (30 layers)", "FlagLLMReranker tuned (30 layers)"
# name: (task, ours, peer, goal for ours / peer); a ratio is reported when both rows were measured
RATIOS = {
    "training": ("training", OURS_30, TEVATRON, 1.3),
    "training, compiled": ("training", OURS_30_COMPILED, TEVATRON, 1.3),
    "scoring": ("scoring", OURS_30, FLAG_TUNED, 2.0),
}


def ratios(report: dict) -> dict:
    """Each of RATIOS whose two rows the report holds: its value, which rows, its goal."""
    found = {}
    for name, (task, ours, peer, goal) in RATIOS.items():
        rows = report[task]
        if ours in rows and peer in rows:
            found[name] = {"value": rows[ours]["pairs_per_s"] / rows[peer]["pairs_per_s"], "of": f"{ours} / {peer}", "goal": goal}
    return found


def settings_text(row: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in row.get("settings", {}).items() if k not in ("lora", "device"))


def table(report: dict) -> str:
    """The rows, then the ratios against their goals."""
    lines = [f"{'task':9}{'who':44}{'pairs/s':>9}{'seconds':>9}{'pairs':>7}  settings"]
    for task in ("training", "scoring"):
        for who, row in report[task].items():
            lines.append(f"{task:9}{who:44}{row['pairs_per_s']:9.2f}{row['seconds']:9.1f}{row['pairs']:7d}  {settings_text(row)}")
    for task, ratio in report["ratios"].items():
        verdict = "met" if ratio["value"] >= ratio["goal"] else "NOT met"
        lines.append(f"ratio {task}: {ratio['value']:.2f} ({ratio['of']}); goal >= {ratio['goal']}: {verdict}")
    host = report["machine"]
    load = host["load_average"]
    lines.append(f"machine: {host['cpu']}, {host['cpus']} CPUs, torch threads {host['torch_threads']}, "
                 f"1-minute load average {load['start']:.2f} at the start (other work), {load['end']:.2f} at the end")
    return "\n".join(lines)
