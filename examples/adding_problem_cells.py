"""Day 3: which recurrent cells remember over long sequences? The adding problem.

Each sequence carries a value uniform in [0, 1) and a marker at every step; the target is
the sum of the two marked values (one in each half). Always predicting the mean sum 1
gives a test MSE of about 0.167, and a network that forgets the marked values can do no
better. For every sequence length, cell and seed this script runs exactly what

    xpnn train adding-problem --cell CELL --steps T --seed S --iters N ...

runs (``xpnn.course.notebooks.adding_problem``: a 2-H-1 many-to-one network, Adam, the
gradient clipped to norm 1, fresh sequences every iteration), then prints the test MSE
on 1000 fresh sequences per run, a summary table, and writes one figure.

    OPENBLAS_NUM_THREADS=1 python examples/adding_problem_cells.py \\
        [--steps 50,100,200] [--cells rnn,lstm,gru] [--seeds 5] [--iters 1000] \\
        [--plot adding_problem.png] [--json results.json]
"""

import argparse
import json
import statistics

from xpnn.course import notebooks
from xpnn.course.settings import AddingProblem

LEARNED = 0.1  # a run "learned" the task when its test MSE is below 1/10 of the baseline

parser = argparse.ArgumentParser()
parser.add_argument("--steps", default="50,100,200", help="sequence lengths, comma-separated")
parser.add_argument("--cells", default="rnn,lstm,gru")
parser.add_argument("--seeds", type=int, default=5)
parser.add_argument("--iters", type=int, default=AddingProblem.iters)
parser.add_argument("--batch-size", type=int, default=AddingProblem.batch_size)
parser.add_argument("--hidden-size", type=int, default=AddingProblem.hidden_size)
parser.add_argument("--lr", type=float, default=AddingProblem.lr)
parser.add_argument("--backend", default="numpy")
parser.add_argument("--plot", default=None, help="write the figure here (PNG)")
parser.add_argument("--json", default=None, help="write every run's result here")
args = parser.parse_args()
lengths = [int(t) for t in args.steps.split(",")]
cells = args.cells.split(",")

runs = []
for steps in lengths:
    for cell in cells:
        for seed in range(args.seeds):
            settings = AddingProblem(
                cell=cell,
                steps=steps,
                seed=seed,
                iters=args.iters,
                batch_size=args.batch_size,
                hidden_size=args.hidden_size,
                lr=args.lr,
                log_every=args.iters,
                backend=args.backend,
            )
            result = notebooks.adding_problem(settings, echo=None)
            runs.append({"steps": steps, "cell": cell, "seed": seed, **result.metrics})
            runs[-1]["seconds"] = result.seconds
            print(
                f"T={steps:4d} {cell:4s} seed {seed}: test MSE {result.metrics['test_mse']:.4f} "
                f"(baseline {result.metrics['baseline_mse']:.4f}), {result.seconds:.1f} s",
                flush=True,
            )

print(
    f"\n{args.iters} iterations of {args.batch_size} sequences, hidden {args.hidden_size}, "
    f"Adam lr {args.lr:g}, {args.seeds} seeds; test MSE on 1000 fresh sequences "
    f"(baseline: always predicting 1)\n"
)
print(
    "| T | cell | median test MSE | best / worst | learned (MSE < baseline / 10) "
    "| baseline / median | seconds per run |"
)
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
for steps in lengths:
    for cell in cells:
        mine = [r for r in runs if r["steps"] == steps and r["cell"] == cell]
        mses = [r["test_mse"] for r in mine]
        baseline = statistics.mean(r["baseline_mse"] for r in mine)
        median = statistics.median(mses)
        learned = sum(r["test_mse"] < LEARNED * r["baseline_mse"] for r in mine)
        seconds = statistics.median(r["seconds"] for r in mine)
        print(
            f"| {steps} | {cell} | {median:.4f} | {min(mses):.4f} / {max(mses):.4f} | "
            f"{learned}/{len(mine)} | {baseline / median:.1f}x | {seconds:.0f} |"
        )

if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"settings": vars(args), "runs": runs}, f, indent=1)

if args.plot:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    ticks, names = [], []
    for k, cell in enumerate(cells):
        for j, steps in enumerate(lengths):
            mses = [r["test_mse"] for r in runs if r["steps"] == steps and r["cell"] == cell]
            x = j + (k - (len(cells) - 1) / 2) * 0.25
            ax.scatter([x] * len(mses), mses, s=18, color=f"C{k}")
            ticks.append(x)
            names.append(f"{cell}\nT = {steps}")
    baseline = statistics.mean(r["baseline_mse"] for r in runs)
    ax.axhline(baseline, color="0.4", linestyle="--", label=f"always predicting 1: {baseline:.3f}")
    ax.set_yscale("log")
    ax.set_xticks(ticks, names)
    ax.set_xlim(-0.5, len(lengths) - 0.5)
    ax.set_ylabel("test MSE on 1000 fresh sequences\n(log scale, one dot per seed)")
    ax.set_title(
        f"Adding problem: {args.iters} iterations x {args.batch_size} sequences, hidden "
        f"{args.hidden_size},\nAdam lr {args.lr:g}, {args.seeds} seeds, {args.backend} float64",
        fontsize="medium",
    )
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nwrote {args.plot}")
