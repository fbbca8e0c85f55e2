"""Bar plots of metrics over seeds into <name>_bars.png, for results whose
groups have more than one seed (l1_vs_topk).

  /usr/bin/python3 results/plot_seeds.py --result RUN/result.pb --out_dir RUN

One panel per metric; bars grouped by sparsity (the group's target L0, else
its k), one colour per sweep; error bars are 95% t-intervals over seeds.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402

METRICS = [
    ("nmse", "NMSE"),
    ("delta_loss", "delta loss (nats/token)"),
    ("kl_mean", "KL (nats/token)"),
    ("dead_fraction", "dead fraction"),
    ("probe_loss", "probe loss (nats)"),
    ("ablation_sparsity", "ablation sparsity"),
    ("absorption_fraction", "absorption fraction"),
]


def sparsity_of(group):
    h = group.hyperparameters
    for key in ("target_l0", "k"):
        if key in h:
            return h[key]
    return round(group.metrics["l0"].mean) if "l0" in group.metrics else 0


def draw(result, out_dir):
    if not any(stats.n > 1 for g in result.groups for stats in g.metrics.values()):
        return
    metrics = [(m, label) for m, label in METRICS
               if any(m in g.metrics for g in result.groups)]
    sweeps = plot_common.sweeps_in_order(result.groups)
    levels = sorted({sparsity_of(g) for g in result.groups})
    cols = min(4, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    width = 0.8 / max(1, len(sweeps))
    for (metric, label), ax in zip(metrics, axes.flat):
        for s, sweep in enumerate(sweeps):
            xs, ys, lows, highs = [], [], [], []
            for i, level in enumerate(levels):
                for g in result.groups:
                    if g.sweep == sweep and sparsity_of(g) == level and metric in g.metrics:
                        m = g.metrics[metric]
                        xs.append(i + (s - (len(sweeps) - 1) / 2) * width)
                        ys.append(m.mean)
                        lows.append(m.mean - m.ci95_low)
                        highs.append(m.ci95_high - m.mean)
            ax.bar(xs, ys, width, yerr=[lows, highs], capsize=3, label=sweep)
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels(["L0 %g" % level for level in levels])
        ax.set_ylabel(label)
        ax.set_title(label + ", mean and 95% interval over seeds", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    plot_common.save(fig, result, out_dir, result.name + "_bars.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
