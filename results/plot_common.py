"""What every plot script shares: the command line, reading result.pb, the
sweep series drawn against L0, and saving the figure with its provenance.

    result, out_dir = plot_common.load_result(__doc__)
    plot_common.draw_series_vs_l0(ax, result, "nmse")
    plot_common.save(fig, result, out_dir, result.name + ".png")

Needs the generated result_pb2 module on PYTHONPATH (the experiment runner
sets it).
"""
import argparse
import os

import result_pb2


def load_result(description):
    """Parses --result and --out_dir; returns (ExperimentResult, out_dir)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--result", required=True, help="path of result.pb")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    result = result_pb2.ExperimentResult()
    with open(args.result, "rb") as f:
        result.ParseFromString(f.read())
    return result, args.out_dir


def draw_series_vs_l0(ax, result, metric):
    """One line per sweep from the series "<sweep>: <metric> vs l0", points
    sorted by L0, 95% intervals over seeds as error bars (zero-width for one
    seed)."""
    for series in result.series:
        sweep, _, label = series.name.partition(": ")
        if label != metric + " vs l0":
            continue
        low = list(series.y_low) or list(series.y)
        high = list(series.y_high) or list(series.y)
        points = sorted(zip(series.x, series.y, low, high))
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        yerr = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=sweep)


def save(fig, result, out_dir, file_name):
    """Titles the figure with the run's commit and config hash, saves it as
    PNG and, beside it, as SVG."""
    provenance = result.provenance
    fig.suptitle("%s  (commit %s%s, config %s)" % (
        result.name, provenance.git_commit[:10], "+dirty" if provenance.git_dirty else "",
        provenance.config_sha256[:10]), fontsize=9)
    fig.tight_layout()
    out = os.path.join(out_dir, file_name)
    fig.savefig(out, dpi=120)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    print("plot:", out)


def sweeps_in_order(items):
    """The distinct `sweep` names of groups or SAEs, in first-seen order."""
    sweeps = []
    for item in items:
        if item.sweep not in sweeps:
            sweeps.append(item.sweep)
    return sweeps


def hook_label(hook_name):
    """"blocks.1.hook_resid_post" -> "1.resid_post"."""
    return hook_name.replace("blocks.", "").replace("hook_", "")
