"""Plots a synthetic_recovery result: MMCS and NMSE vs L0, one line per sweep
(group means over seeds, with 95% intervals as error bars).

  /usr/bin/python3 results/plot_synthetic_recovery.py --result RUN/result.pb --out_dir RUN

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it). Writes synthetic_recovery.png into --out_dir.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import result_pb2  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result", required=True, help="path of result.pb")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()

    result = result_pb2.ExperimentResult()
    with open(args.result, "rb") as f:
        result.ParseFromString(f.read())

    true_l0 = None
    for sae in result.saes:
        if "true_l0" in sae.metrics:
            true_l0 = sae.metrics["true_l0"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
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
