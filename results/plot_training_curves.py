"""Dead fraction over training into <name>_dead_latents.png (and .svg), for
results whose SAEs recorded a training curve of at least 8 points
(trainer.log_every_steps small enough; dead_latents).

  /usr/bin/python3 results/plot_training_curves.py --result RUN/result.pb --out_dir RUN

One panel per sweep (e.g. AuxK on/off x tied/random encoder init): the
fraction of latents not fired for trainer.dead_after_tokens tokens against
training tokens, one line per dictionary size n (seed 0). A last panel: the
final dead fraction on the validation split against n, one line per sweep,
with 95% intervals over seeds.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402


def draw(result, out_dir):
    saes = [s for s in result.saes if len(s.training_curve) >= 8 and s.seed_index == 0]
    if not saes:
        return
    sweeps = plot_common.sweeps_in_order(saes)
    sizes = sorted({s.hyperparameters.get("n_latents", 0) for s in saes})
    colours = plt.cm.viridis([i / max(1, len(sizes) - 1) for i in range(len(sizes))])
    fig, axes = plt.subplots(1, len(sweeps) + 1, figsize=(4.2 * (len(sweeps) + 1), 3.8),
                             squeeze=False)
    top = max(max(p.dead_fraction for p in s.training_curve) for s in saes)
    for ax, sweep in zip(axes[0], sweeps):
        for s in saes:
            if s.sweep != sweep:
                continue
            n = s.hyperparameters.get("n_latents", 0)
            ax.plot([p.tokens for p in s.training_curve],
                    [p.dead_fraction for p in s.training_curve],
                    color=colours[sizes.index(n)], label="n = %d" % n)
        ax.set_title(sweep, fontsize=9)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("dead fraction (training)")
        ax.set_ylim(-0.02, max(0.05, top * 1.05))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    for sweep in sweeps:
        points = []
        for g in result.groups:
            if g.sweep == sweep and "dead_fraction" in g.metrics:
                m = g.metrics["dead_fraction"]
                points.append((g.hyperparameters.get("n_latents", 0), m.mean, m.ci95_low,
                               m.ci95_high))
        points.sort()
        ax.errorbar([p[0] for p in points], [p[1] for p in points],
                    yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
                    marker="o", capsize=3, label=sweep)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n (latents)")
    ax.set_ylabel("dead fraction (validation, end of training)")
    ax.set_title("final dead fraction vs n", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    plot_common.save(fig, result, out_dir, result.name + "_dead_latents.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
