"""Feature splitting into <name>_map.png (and .svg), for results with a
feature_splitting section.

  /usr/bin/python3 results/plot_feature_splitting.py --result RUN/result.pb --out_dir RUN

Left: the t-SNE map of decoder directions (cosine distance) of every
dictionary, one marker size and colour per dictionary; the reported split
families of the first pair (smallest to largest dictionary) are drawn in
their own colours, with a line from each parent to its children. Right: per
pair, the fraction of the larger dictionary's live latents whose nearest
smaller-dictionary latent has decoder cosine at or above the threshold, and
the fraction whose nearest latent by decoder cosine is also the nearest by
activation correlation.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402


def draw(result, out_dir):
    if not result.HasField("feature_splitting"):
        return
    split = result.feature_splitting
    m = split.map
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [2, 1]})
    greys = ["#bbbbbb", "#888888", "#444444", "#222222"]
    for i, name in enumerate(m.saes):
        idx = [j for j in range(len(m.x)) if m.sae_index[j] == i and m.family[j] < 0]
        ax.scatter([m.x[j] for j in idx], [m.y[j] for j in idx], s=4 + 6 * i,
                   color=greys[i % len(greys)], alpha=0.5, linewidths=0, label=name)
    if split.pairs:
        first = split.pairs[0]
        small = list(m.saes).index(first.small) if first.small in m.saes else -1
        colours = plt.cm.tab10.colors
        for f in range(len(first.families)):
            idx = [j for j in range(len(m.x)) if m.family[j] == f]
            parent = [j for j in idx if m.sae_index[j] == small]
            kids = [j for j in idx if m.sae_index[j] != small]
            colour = colours[f % len(colours)]
            for p in parent:
                for k in kids:
                    ax.plot([m.x[p], m.x[k]], [m.y[p], m.y[k]], color=colour, linewidth=0.8)
                ax.scatter([m.x[p]], [m.y[p]], s=80, marker="*", color=colour,
                           label="family %d (%s latent %d)" % (
                               f, first.small, first.families[f].parent.latent))
            ax.scatter([m.x[k] for k in kids], [m.y[k] for k in kids], s=30, color=colour)
    ax.set_title("t-SNE of decoder directions (cosine distance, perplexity %.3g)" % m.perplexity,
                 fontsize=9)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    labels = ["%s\n-> %s" % (p.small, p.large) for p in split.pairs]
    xs = range(len(split.pairs))
    bars.bar([x - 0.2 for x in xs], [p.fraction_matched for p in split.pairs], 0.4,
             label="nearest cosine >= threshold")
    bars.bar([x + 0.2 for x in xs], [p.nearest_agreement for p in split.pairs], 0.4,
             label="cosine-nearest = correlation-nearest")
    bars.set_xticks(list(xs))
    bars.set_xticklabels(labels, fontsize=7)
    bars.set_ylabel("fraction of the larger dictionary's live latents")
    bars.set_ylim(0, 1)
    bars.set_title("how the larger dictionary's latents match the smaller's", fontsize=9)
    bars.grid(True, axis="y", alpha=0.3)
    bars.legend(fontsize=8)
    plot_common.save(fig, result, out_dir, result.name + "_map.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
