"""Plots a train_subject_lm result into train_subject_lm.png.

  /usr/bin/python3 results/plot_train_subject_lm.py --result RUN/result.pb --out_dir RUN

Validation loss vs training step, with the unigram and uniform baselines
measured on the same validation positions as horizontal lines.

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
    lm = result.language_model
    fig, ax = plt.subplots(figsize=(6, 4))
    for series in result.series:
        if series.name == "val loss vs step":
            ax.plot(series.x, series.y, marker="o", label="model (validation)")
    ax.axhline(lm.unigram_val_loss, color="gray", linestyle="--",
               label="unigram %.3f" % lm.unigram_val_loss)
    ax.axhline(lm.uniform_val_loss, color="black", linestyle=":",
               label="uniform %.3f" % lm.uniform_val_loss)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("%s: %d params, vocab %d, val %.3f" %
                 (result.name, lm.n_parameters, lm.vocab_size, lm.val_loss))
    ax.legend()
    fig.tight_layout()
    out = os.path.join(args.out_dir, "train_subject_lm.png")
    fig.savefig(out, dpi=120)
    print("plot:", out)


if __name__ == "__main__":
    main()
