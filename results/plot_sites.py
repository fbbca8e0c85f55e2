"""Per-hook bars into <name>_sites.png, for results run at several hooks
(layers): NMSE, delta loss and probe loss of each sweep at each site, in
the order the hooks were run.

  /usr/bin/python3 results/plot_sites.py --result RUN/result.pb --out_dir RUN
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402

METRICS = [("nmse", "NMSE"), ("delta_loss", "delta loss (nats/token)"),
           ("probe_loss", "probe loss (nats)"), ("l0", "L0")]


def draw(result, out_dir):
    hooks = []
    for g in result.groups:
        if g.hook_name and g.hook_name not in hooks:
            hooks.append(g.hook_name)
    if len(hooks) < 2:
        return
    metrics = [(m, label) for m, label in METRICS if any(m in g.metrics for g in result.groups)]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(8, 0.6 * len(hooks)), 2.6 * len(metrics)),
                             squeeze=False)
    sweeps = plot_common.sweeps_in_order(result.groups)
    width = 0.8 / max(1, len(sweeps))
    for (metric, label), ax in zip(metrics, axes[:, 0]):
        for s, sweep in enumerate(sweeps):
            xs, ys, errs = [], [], [[], []]
            for i, hook in enumerate(hooks):
                for g in result.groups:
                    if g.sweep == sweep and g.hook_name == hook and metric in g.metrics:
                        m = g.metrics[metric]
                        xs.append(i + (s - (len(sweeps) - 1) / 2) * width)
                        ys.append(m.mean)
                        errs[0].append(m.mean - m.ci95_low)
                        errs[1].append(m.ci95_high - m.mean)
            ax.bar(xs, ys, width, yerr=errs, capsize=2, label=sweep)
        ax.set_xticks(range(len(hooks)))
        ax.set_xticklabels([plot_common.hook_label(h) for h in hooks], rotation=30, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
        if len(sweeps) > 1:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("hook (block.site)")
    plot_common.save(fig, result, out_dir, result.name + "_sites.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
