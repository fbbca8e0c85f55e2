"""Plots the power-law fits of a result (scaling laws) into <name>_scaling.png.

  /usr/bin/python3 results/plot_scaling.py --result RUN/result.pb --out_dir RUN

One log-log panel per fit (ExperimentResult.fits): every group's point
(grey), the fitted points (dark), the fitted curve y = a x^-alpha + c and,
dashed, its irreducible term c; alpha with its 95% bootstrap interval in the
legend. Gao et al. 2024 Fig. 1 and Anthropic's scaling plots use these axes.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402

UNITS = {
    "n_latents": "latents n",
    "train_flops": "training compute (flops, 6 d n tokens)",
    "total_tokens": "training tokens",
    "nmse": "NMSE",
    "delta_loss": "delta loss (nats/token)",
}


def group_value(group, key):
    if key in group.hyperparameters:
        return group.hyperparameters[key]
    if key in group.metrics:
        return group.metrics[key].mean
    return None


def draw(result, out_dir):
    if not result.fits:
        return
    fig, axes = plt.subplots(1, len(result.fits), figsize=(5.2 * len(result.fits), 4.2),
                             squeeze=False)
    for fit, ax in zip(result.fits, axes[0]):
        everything = [(group_value(g, fit.x), group_value(g, fit.y)) for g in result.groups]
        everything = [p for p in everything if p[0] and p[1] and p[1] > 0]
        ax.scatter([p[0] for p in everything], [p[1] for p in everything], color="0.75",
                   s=18, label="all groups")
        ax.scatter(list(fit.points_x), list(fit.points_y), color="C0", s=28, label="fitted")
        lo, hi = min(fit.points_x), max(fit.points_x)
        xs = [lo * (hi / lo) ** (i / 99) for i in range(100)]
        a, alpha, c = fit.a.mean, fit.alpha.mean, fit.c.mean
        ax.plot(xs, [a * x ** (-alpha) + c for x in xs], color="C3",
                label="%.3g x^-%.3f + %.3g\nalpha 95%%: [%.3f, %.3f]" %
                (a, alpha, c, fit.alpha.ci95_low, fit.alpha.ci95_high))
        if c > 0:
            ax.axhline(c, color="C3", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(UNITS.get(fit.x, fit.x))
        ax.set_ylabel(UNITS.get(fit.y, fit.y))
        ax.set_title("%s (rms log residual %.3f)" % (fit.name, fit.rms_log_residual), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    plot_common.save(fig, result, out_dir, result.name + "_scaling.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
