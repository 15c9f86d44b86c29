"""Tiny Shakespeare in a time budget: schedules sized to the budget against the fixed recipe.

The benchmark of issue 17's first item. Every run is the command a user would type
(`python -m kerasgen.train ...` in a subprocess); its wall time is from launch to exit, so
Python and TensorFlow start-up, data preparation, compilation, the validation passes and the
final evaluation are all included. The data is `--data` (Tiny Shakespeare: the first 90% of its
characters train, the last 10% validate; never copied into the project).

Runs, one after the other in one invocation (`--runs` picks a subset):

1. **fixed_recipe** — `text_generator_budget` with its recipe's fixed length given explicitly
   (`--epochs=4 --steps_per_epoch=450`, 1,800 steps sized for an older machine): the budget
   only cuts it short, as before budget-sized schedules.
2. **budget_sized** — the same preset with only `--time_budget_seconds`: the run measures its
   step time over its first steps, plans its length to end at the budget and lays its warmup
   and cosine decay over it (`kerasgen.training.budget_plan`).
3. **budget_sized_gpt** — the same for the best GPT preset for the budget (`gpt`).
4. **busy_machine** — `budget_sized` again, with a CPU-heavy process per core started halfway
   through the budget (each stops by itself at the budget's end, and is ended by its id if
   still running): the plan no longer fits, and the run must still end within the budget with
   its learning rate annealed to the floor (the clock-driven decay, `BudgetedSchedule`).

`--budget` is the whole command's wall time (600 s: the issue's 10 minutes); the runs get
`--time_budget_seconds` = budget - `--startup_seconds` (what comes before training's clock
starts: start-up, reading the data, the tokenizer and the model; 20 s on 2 cores). Every run
passes `--export=false --num_samples=0` (nothing to reserve for an export or samples). The
table gives, per run: wall time against the budget, steps trained, steady step time
(`StepTimer`'s median, compilation excluded), final validation loss (nats per character), the
learning rate at the end of training against its floor, and the plan line.

Usage (from the repository; about 4 x `--budget` of wall time for all runs):

    python benchmarks/budget_quality.py --data=../shared/data/tinyshakespeare.txt
    python benchmarks/budget_quality.py --data=... --budget=30 --runs=budget_sized  # a smoke run

`--write_notes` replaces the section between `<!-- budget_quality:begin -->` and
`<!-- budget_quality:end -->` in BUILD_NOTES.md (appended under "Time budgets" if missing).
"""

import argparse
import datetime
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time

# `notes` sits beside this file; put it on the path also when a test loads the script by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import at_the_end, write_section  # noqa: E402

QUALITY_TARGET = 1.47  # the target for the best zoo preset in 10 minutes
WITHIN = 0.05  # a budgeted run ends within 5% of its budget
ANNEALED = 0.01  # the final rate within 1% of the floor
FLOOR_FRACTION = 0.1  # kerasgen.training.optimizers.FINAL_LEARNING_RATE_FRACTION

COMMON = ["--data_path={data}", "--export=false", "--num_samples=0", "--verbose=2"]
RUNS = {
    "fixed_recipe": ["--model=text_generator_budget", "--epochs=4", "--steps_per_epoch=450"],
    "budget_sized": ["--model=text_generator_budget"],
    "budget_sized_gpt": ["--model=gpt"],
    "busy_machine": ["--model=text_generator_budget"],
}
BUDGET_SIZED = ("budget_sized", "budget_sized_gpt", "busy_machine")
# One core's worth of busy work that stops by itself after {seconds} seconds.
BUSY_LOOP = (
    "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass"
)


def _start_busy_processes(python, seconds):
    """One busy process per core, each bounded to `seconds`; returns them."""
    return [
        subprocess.Popen([python, "-c", BUSY_LOOP.format(seconds=seconds)])
        for _ in range(os.cpu_count() or 1)
    ]


def run(name, args):
    training_seconds = args.budget - args.startup_seconds
    workdir = tempfile.mkdtemp(prefix=f"budget-{name}-")
    flags = (
        [f.format(data=args.data) for f in COMMON]
        + RUNS[name]
        + [f"--time_budget_seconds={training_seconds:g}", f"--workdir={workdir}"]
    )
    command = [args.python, "-m", "kerasgen.train", *flags]
    busy, timer = [], None
    started = time.monotonic()
    if name == "busy_machine":
        # Halfway through the budget, until its end: bounded, whatever the run does.
        timer = threading.Timer(
            args.budget / 2,
            lambda: busy.extend(_start_busy_processes(args.python, args.budget / 2)),
        )
        timer.start()
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        if timer is not None:
            timer.cancel()
        for process in busy:  # only the processes this benchmark started, by their id
            if process.poll() is None:
                process.kill()
            process.wait()
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
    out = result.stdout
    loss = float(re.search(r"Validation loss ([0-9.]+) nats/token", out).group(1))
    step = re.search(r"Steady-state step time ([0-9.]+) ms \((\d+) steps trained\)", out)
    rate = re.search(r"Learning rate at the end of training ([0-9.e-]+) \(peak ([0-9.e-]+)\)", out)
    plan = re.search(r"^(Planned .*)$", out, flags=re.M)
    display = "python -m kerasgen.train " + " ".join(
        shlex.quote(f) for f in flags if not f.startswith(("--workdir", "--data_path"))
    )
    return dict(
        name=name,
        command=display,
        seconds=seconds,
        budget=args.budget,
        loss=loss,
        ms_per_step=float(step.group(1)) if step else None,
        steps=int(step.group(2)) if step else None,
        rate=float(rate.group(1)) if rate else None,
        floor=float(rate.group(2)) * FLOOR_FRACTION if rate else None,
        plan=plan.group(1).split(":")[0] if plan else "-",
    )


def _annealed(r):
    return r["rate"] is not None and abs(r["rate"] - r["floor"]) <= ANNEALED * r["floor"]


def table(results):
    lines = [
        "| run | wall time / budget | steps | steady step | validation loss | final rate "
        "(floor) | plan | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ms = f"{r['ms_per_step']:.1f} ms" if r["ms_per_step"] else "-"
        rate = f"{r['rate']:.3g} ({r['floor']:.3g})" if r["rate"] is not None else "-"
        lines.append(
            f"| {r['name']} | {r['seconds']:.1f} s / {r['budget']:g} s | {r['steps']} | {ms} | "
            f"{r['loss']:.4f} | {rate} | {r['plan']} | `{r['command']}` |"
        )
    return "\n".join(lines)


def verdicts(results):
    lines = []
    for r in results:
        if r["name"] not in BUDGET_SIZED:
            continue
        low, high = (1 - WITHIN) * r["budget"], r["budget"]
        within = low <= r["seconds"] <= high
        lines.append(
            f"- {r['name']}: ended {'within' if within else 'OUTSIDE'} 5% of its budget "
            f"({r['seconds']:.1f} s of {r['budget']:g} s), learning rate "
            f"{'annealed to its floor' if _annealed(r) else 'NOT annealed'}."
        )
    sized = [r for r in results if r["name"] in ("budget_sized", "budget_sized_gpt")]
    fitting = [r for r in sized if r["seconds"] <= r["budget"]]
    if sized:
        best = min(fitting, key=lambda r: r["loss"], default=None)
        met = best is not None and best["loss"] <= QUALITY_TARGET and best["budget"] >= 600
        outcome = f"{best['name']}: {best['loss']:.4f}" if best else "no run within the budget"
        lines.append(
            f"- Quality target (<= {QUALITY_TARGET} in 10 minutes, best zoo preset): "
            f"{'MET' if met else 'NOT MET'} — {outcome}"
            + ("" if sized[0]["budget"] >= 600 else " (a shorter budget than the target's)")
            + "."
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Tiny Shakespeare (a local text file)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"subset of {', '.join(RUNS)}")
    parser.add_argument("--budget", type=float, default=600.0, help="whole-command seconds")
    parser.add_argument(
        "--startup_seconds",
        type=float,
        default=20.0,
        help="seconds before training's clock starts (start-up, data, tokenizer, model)",
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--write_notes", action="store_true")
    parser.add_argument("--notes_path", default="BUILD_NOTES.md")
    args = parser.parse_args()
    if not os.path.exists(args.data):
        sys.exit(f"{args.data}: no such file (Tiny Shakespeare is not part of the project)")
    unknown = set(args.runs.split(",")) - set(RUNS)
    if unknown:
        sys.exit(f"unknown runs: {', '.join(sorted(unknown))}; valid: {', '.join(RUNS)}")
    if not args.startup_seconds < args.budget:
        sys.exit(f"--startup_seconds={args.startup_seconds:g} leaves no training time")
    results = []
    for name in args.runs.split(","):
        results.append(run(name, args))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    load = os.getloadavg()[0]
    text = (
        f"Measured {datetime.date.today()} ({os.cpu_count()} cores; load average {load:.1f} at "
        "the end, the machine is shared) with `python benchmarks/budget_quality.py "
        f"--runs={args.runs} --budget={args.budget:g} --startup_seconds={args.startup_seconds:g}`."
        " Wall time is from launch to exit of each command.\n\n"
        + table(results)
        + "\n\n"
        + verdicts(results)
    )
    print(text)
    if args.write_notes:
        write_section(args.notes_path, "budget_quality", text, add=at_the_end("### Time budgets"))


if __name__ == "__main__":
    main()
