"""Plots a subject_sae result into <name>.png (and .svg).

  /usr/bin/python3 results/plot_subject_sae.py --result RUN/result.pb --out_dir RUN

NMSE, dead fraction and delta loss (CE with the SAE spliced in minus clean
CE, nats/token) vs L0, one line per sweep (group means over seeds,
95% intervals as error bars), on the validation split's activations.

Then, when the result has them: the power-law fits on log-log axes
(plot_scaling.py), bars over seeds (plot_seeds.py), bars per hook
(plot_sites.py), the evaluations vs L0 (plot_evaluations.py), dead
fraction over training (plot_training_curves.py) and the feature-splitting
map (plot_feature_splitting.py) and circuit faithfulness (plot_circuits.py). Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_circuits  # noqa: E402
import plot_common  # noqa: E402
import plot_evaluations  # noqa: E402
import plot_feature_splitting  # noqa: E402
import plot_scaling  # noqa: E402
import plot_seeds  # noqa: E402
import plot_sites  # noqa: E402
import plot_training_curves  # noqa: E402


def main():
    result, out_dir = plot_common.load_result(__doc__)
    data = result.activation_data
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for metric, ax in zip(("nmse", "dead_fraction", "delta_loss"), axes):
        plot_common.draw_series_vs_l0(ax, result, metric)
        ax.set_xscale("log")
        if metric != "dead_fraction":  # log-log, as Gao et al.'s frontiers
            ax.set_yscale("log")
        ax.set_xlabel("L0 (mean active latents per token, validation split)")
        ax.set_ylabel("delta_loss (nats/token)" if metric == "delta_loss" else metric)
        # A transcoder run reads one hook and predicts another.
        hooks = data.hook_name
        if data.HasField("target_hook_name"):
            hooks = "%s -> %s" % (data.hook_name, data.target_hook_name)
        ax.set_title("%s (d=%d), %d train / %d eval rows" %
                     (hooks, data.d_in, data.train_rows, data.eval_rows), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    plot_common.save(fig, result, out_dir, result.name + ".png")
    plot_scaling.draw(result, out_dir)
    plot_seeds.draw(result, out_dir)
    plot_sites.draw(result, out_dir)
    plot_evaluations.draw(result, out_dir)
    plot_training_curves.draw(result, out_dir)
    plot_feature_splitting.draw(result, out_dir)
    plot_circuits.draw(result, out_dir)


if __name__ == "__main__":
    main()
