"""Plots a train_subject_lm result into train_subject_lm.png.

  /usr/bin/python3 results/plot_train_subject_lm.py --result RUN/result.pb --out_dir RUN

Validation loss vs training step, with the unigram and uniform baselines
measured on the same validation positions as horizontal lines.

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402


def main():
    result, out_dir = plot_common.load_result(__doc__)
    lm = result.language_model
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for series in result.series:
        if series.name == "val loss vs step":
            ax.plot(series.x, series.y, marker="o", label="model (validation sample)")
    ax.axhline(lm.val_loss, color="C0", linestyle="-", alpha=0.4,
               label="model, whole validation split %.3f" % lm.val_loss)
    ax.axhline(lm.unigram_val_loss, color="gray", linestyle="--",
               label="unigram %.3f" % lm.unigram_val_loss)
    ax.axhline(lm.uniform_val_loss, color="black", linestyle=":",
               label="uniform %.3f" % lm.uniform_val_loss)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("%d parameters, vocabulary %d" % (lm.n_parameters, lm.vocab_size), fontsize=9)
    ax.legend()
    plot_common.save(fig, result, out_dir, "train_subject_lm.png")


if __name__ == "__main__":
    main()
