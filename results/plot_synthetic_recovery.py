"""Plots a synthetic_recovery result into synthetic_recovery.png.

  /usr/bin/python3 results/plot_synthetic_recovery.py --result RUN/result.pb --out_dir RUN

Sweeps over the sparsity knob: MMCS and NMSE vs L0, one line per sweep
(group means over seeds, 95% intervals as error bars). When every SAE was
trained to a target L0 (matched-L0 runs): bars of MMCS, NMSE and dead
fraction per architecture at each target, with 95% intervals over seeds.
On data with a planted feature hierarchy (synthetic_absorption): one more
panel, absorption per group with 95% intervals, beside the parent latent's
miss rate on tokens without a child (parent_miss_alone, mean over seeds).

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402


def true_l0_of(result):
    for sae in result.saes:
        if "true_l0" in sae.metrics:
            return sae.metrics["true_l0"]
    return None


def plot_sweeps(result, axes):
    true_l0 = true_l0_of(result)
    for metric, ax in zip(("mmcs", "nmse"), axes):
        plot_common.draw_series_vs_l0(ax, result, metric)
        if true_l0 is not None:
            ax.axvline(true_l0, color="gray", linestyle=":", label="true L0 = %.2f" % true_l0)
        ax.set_xscale("log")
        ax.set_xlabel("L0 (mean active latents per token, eval set)")
        if metric == "nmse":
            ax.set_yscale("log")
            ax.set_ylabel("NMSE (lower is better)")
        else:
            ax.set_ylabel("MMCS with true features (higher is better)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()


def plot_matched(result, axes):
    groups = list(result.groups)
    names = ["%s\nL0 %.2f" % (g.architecture, g.metrics["l0"].mean) for g in groups]
    for metric, ax, label in zip(("mmcs", "nmse", "dead_fraction"), axes,
                                 ("MMCS (higher is better)", "NMSE (lower is better)",
                                  "dead fraction")):
        means = [g.metrics[metric].mean for g in groups]
        yerr = [[g.metrics[metric].mean - g.metrics[metric].ci95_low for g in groups],
                [g.metrics[metric].ci95_high - g.metrics[metric].mean for g in groups]]
        ax.bar(range(len(groups)), means, yerr=yerr, capsize=4,
               color=["C%d" % i for i in range(len(groups))])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylabel(label)
        if metric == "mmcs":
            low = min(g.metrics[metric].ci95_low for g in groups)
            ax.set_ylim(max(0.0, low - 0.05), 1.0)
        n = max(g.metrics[metric].n for g in groups)
        ax.set_title("%s, mean and 95%% CI over %d seeds" % (metric, n), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)


def plot_absorption(result, ax):
    groups = [g for g in result.groups if "absorption" in g.metrics]
    x = range(len(groups))
    means = [g.metrics["absorption"].mean for g in groups]
    yerr = [[g.metrics["absorption"].mean - g.metrics["absorption"].ci95_low for g in groups],
            [g.metrics["absorption"].ci95_high - g.metrics["absorption"].mean for g in groups]]
    ax.bar(x, means, yerr=yerr, capsize=4, color=["C%d" % i for i in x],
           label="parent latent silent, a child active")
    alone = []
    for g in groups:
        values = [sae.metrics["parent_miss_alone"] for sae in result.saes
                  if sae.group == g.group and "parent_miss_alone" in sae.metrics]
        alone.append(sum(values) / len(values) if values else float("nan"))
    ax.plot(list(x), alone, "k_", markersize=30, mew=2,
            label="parent latent silent, no child (mean)")
    ax.set_xticks(list(x))
    ax.set_xticklabels([g.group for g in groups], fontsize=8)
    ax.set_ylabel("absorption (lower is better)")
    ax.set_ylim(0, max(1e-3, max(means) * 1.3, max(alone) * 1.3))
    ax.set_title("absorption, mean and 95% CI over seeds", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def main():
    result, out_dir = plot_common.load_result(__doc__)
    matched = len(result.saes) > 0 and all(sae.target_l0 > 0 for sae in result.saes)
    absorption = any("absorption" in g.metrics for g in result.groups)
    extra = 1 if absorption else 0
    if matched:
        fig, axes = plt.subplots(1, 3 + extra, figsize=(15 + 5 * extra, 4.4))
        plot_matched(result, axes[:3])
    else:
        fig, axes = plt.subplots(1, 2 + extra, figsize=(11 + 5.5 * extra, 4.2))
        plot_sweeps(result, axes[:2])
    if absorption:
        plot_absorption(result, axes[-1])
    plot_common.save(fig, result, out_dir, "synthetic_recovery.png")


if __name__ == "__main__":
    main()
