"""Plots a subject_sae result into subject_sae.png.

  /usr/bin/python3 results/plot_subject_sae.py --result RUN/result.pb --out_dir RUN

NMSE and dead fraction vs L0, one line per sweep (group means over seeds,
95% intervals as error bars), on the validation split's activations.

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import result_pb2  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result", required=True)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    result = result_pb2.ExperimentResult()
    with open(args.result, "rb") as f:
        result.ParseFromString(f.read())
    data = result.activation_data
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for metric, ax in zip(("nmse", "dead_fraction"), axes):
        for series in result.series:
            sweep, _, label = series.name.partition(": ")
            if not label.startswith(metric + " "):
                continue
            low = list(series.y_low) or list(series.y)
            high = list(series.y_high) or list(series.y)
            points = sorted(zip(series.x, series.y, low, high))
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=sweep)
        ax.set_xscale("log")
        ax.set_xlabel("L0 (active latents per token)")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle("%s: %s (d=%d), %d train / %d eval rows" %
                 (result.name, data.hook, data.d_in, data.train_rows, data.eval_rows))
    fig.tight_layout()
    out = os.path.join(args.out_dir, "subject_sae.png")
    fig.savefig(out, dpi=120)
    print("plot:", out)


if __name__ == "__main__":
    main()
