"""Sparse feature circuits into <name>_faithfulness.png (and .svg), for
results with circuits.

  /usr/bin/python3 results/plot_circuits.py --result RUN/result.pb --out_dir RUN

Per task (as in Marks et al. 2024, Fig. 3): the faithfulness of the circuit
made of the top-n nodes (everything else mean-ablated) and of its
complement (the circuit ablated, everything else kept), against n on a log
axis; the reported circuit is marked. The graphs themselves are
RUN/circuits/<task>.html.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_common  # noqa: E402


def draw(result, out_dir):
    if not result.circuits:
        return
    fig, axes = plt.subplots(1, len(result.circuits), figsize=(6 * len(result.circuits), 4.2),
                             squeeze=False)
    for circuit, ax in zip(result.circuits, axes[0]):
        sizes = [p.size for p in circuit.curve]
        ax.plot(sizes, [p.faithfulness for p in circuit.curve], marker="o", markersize=3,
                label="circuit (rest mean-ablated)")
        ax.plot(sizes, [p.complement_faithfulness for p in circuit.curve], marker="o",
                markersize=3, label="everything but the circuit")
        ax.axhline(circuit.target_faithfulness, color="grey", linestyle=":", linewidth=1)
        ax.axvline(circuit.circuit_size, color="grey", linestyle="--", linewidth=1,
                   label="reported: %d nodes, %.2f" % (circuit.circuit_size,
                                                       circuit.circuit_faithfulness))
        ax.set_xscale("log")
        ax.set_xlabel("nodes (SAE latents and error terms, by |%s effect|)" % circuit.method)
        ax.set_ylabel("faithfulness")
        ax.set_title("%s: %d sites, %d/%d pairs, model accuracy %.2f" %
                     (circuit.task, len(circuit.sites), circuit.discovery_pairs,
                      circuit.evaluation_pairs, circuit.clean_accuracy), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    plot_common.save(fig, result, out_dir, result.name + "_faithfulness.png")


if __name__ == "__main__":
    draw(*plot_common.load_result(__doc__))
