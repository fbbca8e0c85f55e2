"""The evaluations' headline metrics against L0 into <name>_evaluations.png
(and .svg), for results whose SAEs ran any of them (probes, ablation,
absorption, steering, classification).

  /usr/bin/python3 results/plot_evaluations.py --result RUN/result.pb --out_dir RUN

One panel per metric present, one line per sweep: group means over seeds
with 95% intervals, L0 on a log axis. docs/metrics.md defines each metric.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402

METRICS = [
    ("probe_loss", "probe loss (nats, lower is better)"),
    ("sparse_probe_top1_accuracy", "sparse probe accuracy, k = 1"),
    ("sparse_probe_top5_accuracy", "sparse probe accuracy, k = 5"),
    ("ablation_sparsity", "ablation sparsity (lower is sparser)"),
    ("absorption_fraction", "absorption fraction"),
    ("full_absorption_rate", "full absorption rate"),
    ("steering_concept_rate", "steering: concept rate at the largest clamp"),
    ("steering_fluency_cost", "steering: fluency cost (nats/token)"),
    ("classification_latent_accuracy", "classification accuracy (SAE latents)"),
]


def draw(result, out_dir):
    present = [(m, label) for m, label in METRICS
               if any(m in g.metrics for g in result.groups)]
    if not present:
        return
    cols = min(3, len(present))
    rows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.8 * rows), squeeze=False)
    sweeps = plot_common.sweeps_in_order(result.groups)
    for (metric, label), ax in zip(present, axes.flat):
        for sweep in sweeps:
            points = sorted(
                (g.metrics["l0"].mean, g.metrics[metric].mean, g.metrics[metric].ci95_low,
                 g.metrics[metric].ci95_high)
                for g in result.groups
                if g.sweep == sweep and metric in g.metrics and "l0" in g.metrics)
            if not points:
                continue
            ax.errorbar([p[0] for p in points], [p[1] for p in points],
                        yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
                        marker="o", capsize=3, label=sweep)
        if metric == "classification_latent_accuracy":
            for g in result.groups[:1]:
                if "classification_activation_accuracy" in g.metrics:
                    ax.axhline(g.metrics["classification_activation_accuracy"].mean,
                               color="black", linestyle="--", label="raw activation")
        if metric == "steering_concept_rate":
            for g in result.groups[:1]:
                if "unsteered_concept_rate" in g.metrics:
                    ax.axhline(g.metrics["unsteered_concept_rate"].mean, color="black",
                               linestyle="--", label="unsteered model")
        ax.set_xscale("log")
        ax.set_xlabel("L0 (validation split)")
        ax.set_ylabel(metric)
        ax.set_title(label, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    plot_common.save(fig, result, out_dir, result.name + "_evaluations.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
