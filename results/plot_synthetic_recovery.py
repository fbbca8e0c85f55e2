"""Plots a synthetic_recovery result into synthetic_recovery.png.

  /usr/bin/python3 results/plot_synthetic_recovery.py --result RUN/result.pb --out_dir RUN

Sweeps over the sparsity knob: MMCS and NMSE vs L0, one line per sweep
(group means over seeds, 95% intervals as error bars). When every SAE was
trained to a target L0 (matched-L0 runs): bars of MMCS, NMSE and dead
fraction per architecture at each target, with 95% intervals over seeds.

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import result_pb2  # noqa: E402


def true_l0_of(result):
    for sae in result.saes:
        if "true_l0" in sae.metrics:
            return sae.metrics["true_l0"]
    return None


def plot_sweeps(result, axes):
    true_l0 = true_l0_of(result)
    for metric, ax in zip(("mmcs", "nmse"), axes):
        for series in result.series:
            sweep, _, label = series.name.partition(": ")
            if not label.startswith(metric):
                continue
            low = list(series.y_low) or list(series.y)
            high = list(series.y_high) or list(series.y)
            points = sorted(zip(series.x, series.y, low, high))
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            # 95% intervals over seeds (zero-width for one seed).
            yerr = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=sweep)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result", required=True, help="path of result.pb")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()

    result = result_pb2.ExperimentResult()
    with open(args.result, "rb") as f:
        result.ParseFromString(f.read())

    matched = len(result.saes) > 0 and all(sae.target_l0 > 0 for sae in result.saes)
    if matched:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
        plot_matched(result, axes)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        plot_sweeps(result, axes)
    provenance = result.provenance
    fig.suptitle("%s  (commit %s%s, config %s)" % (
        result.name, provenance.git_commit[:10], "+dirty" if provenance.git_dirty else "",
        provenance.config_sha256[:10]), fontsize=9)
    fig.tight_layout()
    out = os.path.join(args.out_dir, "synthetic_recovery.png")
    fig.savefig(out, dpi=120)
    print("plot:", out)


if __name__ == "__main__":
    main()
