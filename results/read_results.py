"""Flattens saelab results into one row per SAE, for a notebook or a
spreadsheet: CSV or JSON lines on stdout (or --out).

    ./bazelw run //results:read_results -- results/runs/frontier > frontier.csv
    ./bazelw run //results:read_results -- --format=jsonl runs/topk_k32 runs/relu

In Python (Debian's python3 with python3-protobuf; result_pb2 is generated
at bazel-bin/harness/result_pb2.py):

    import sys; sys.path[:0] = ["results", "bazel-bin/harness"]
    import read_results, pandas
    frame = pandas.DataFrame(read_results.load_rows(["results/runs"]))

Each path is a run directory (result.pb or result.textproto inside, as the
experiments and `saelab train` write), a result file, or a directory searched
recursively for them. A row holds: run (the directory), experiment, result
(the run's name), sae, group, architecture, hook, seed, seed_index,
train_tokens, eval_tokens, train_wall_seconds, target_l0, every
hyperparameter as hp.<name> (n_latents, k, ...), every metric by its name
(nmse, l0, delta_loss, ...), git_commit, git_dirty, config_sha256,
start_time. CSV columns are the union over rows (fixed columns first, then
hyperparameters, then metrics, each sorted); a value a row lacks is empty.
"""
import argparse
import csv
import json
import os
import signal
import sys

RESULT_FILES = ("result.pb", "result.textproto")


def _import_result_pb2():
    """result_pb2 from PYTHONPATH, else from bazel-bin/harness beside this
    script's workspace."""
    try:
        import result_pb2  # noqa: F401
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "bazel-bin", "harness"))
    import result_pb2
    return result_pb2


def find_result_files(path):
    """The result files under `path` (a file, a run directory, or a tree)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        # One result per run directory: the binary one when both exist.
        for name in RESULT_FILES:
            if name in files:
                found.append(os.path.join(root, name))
                break
    return found


def read_result(path):
    """The ExperimentResult in `path` (.pb binary or .textproto text);
    ValueError naming the file if it does not parse."""
    result_pb2 = _import_result_pb2()
    result = result_pb2.ExperimentResult()
    try:
        if path.endswith(".textproto"):
            from google.protobuf import text_format
            with open(path, encoding="utf-8") as f:
                text_format.Parse(f.read(), result)
        else:
            with open(path, "rb") as f:
                result.ParseFromString(f.read())
    except Exception as e:
        raise ValueError(f"{path}: not a saelab result ({e})") from None
    return result


def rows_of(result, run):
    """One dict per SAE of `result`."""
    p = result.provenance
    rows = []
    for sae in result.saes:
        row = {
            "run": run,
            "experiment": result.experiment,
            "result": result.name,
            "sae": sae.name,
            "group": sae.group or sae.name,
            "architecture": sae.architecture,
            "hook": sae.hook_name,
            "seed": sae.seed,
            "seed_index": sae.seed_index,
            "train_tokens": sae.train_tokens,
            "eval_tokens": sae.eval_tokens,
            "train_wall_seconds": sae.train_wall_seconds,
            "target_l0": sae.target_l0 if sae.HasField("target_l0") else None,
        }
        for name in sorted(sae.hyperparameters):
            row["hp." + name] = sae.hyperparameters[name]
        for name in sorted(sae.metrics):
            row[name] = sae.metrics[name]
        row.update({
            "git_commit": p.git_commit,
            "git_dirty": p.git_dirty,
            "config_sha256": p.config_sha256,
            "start_time": p.start_time,
        })
        rows.append(row)
    return rows


def load_rows(paths):
    """Every SAE of every result under `paths`, as flat dicts."""
    rows = []
    for path in paths:
        for file in find_result_files(path):
            rows.extend(rows_of(read_result(file), os.path.dirname(file) or "."))
    return rows


FIXED = ["run", "experiment", "result", "sae", "group", "architecture", "hook", "seed",
         "seed_index", "train_tokens", "eval_tokens", "train_wall_seconds", "target_l0"]
PROVENANCE = ["git_commit", "git_dirty", "config_sha256", "start_time"]


def columns(rows):
    """Fixed columns, then hp.*, then metrics (each sorted), then provenance."""
    names = set().union(*(row.keys() for row in rows)) if rows else set()
    rest = names - set(FIXED) - set(PROVENANCE)
    hps = sorted(n for n in rest if n.startswith("hp."))
    metrics = sorted(n for n in rest if not n.startswith("hp."))
    return FIXED + hps + metrics + PROVENANCE


def write(rows, out, fmt):
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, sort_keys=False) + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # repr-exact floats: 17 significant digits survive the round trip.
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                         for k, v in row.items()})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run directories, result files or trees")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--out", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    # Under `bazel run`, relative paths are the user's, not the runfiles'.
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    paths = [p if os.path.isabs(p) or not base else os.path.join(base, p) for p in args.paths]
    try:
        rows = load_rows(paths)
    except Exception as e:  # a missing path or a malformed result file, named
        print(f"read_results: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"read_results: no SAE results under {', '.join(args.paths)}", file=sys.stderr)
        return 1
    out_path = args.out
    if out_path and base and not os.path.isabs(out_path):
        out_path = os.path.join(base, out_path)
    if out_path:
        tmp = out_path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            write(rows, f, args.format)
        os.replace(tmp, out_path)  # atomic: a reader never sees half a table
    else:
        write(rows, sys.stdout, args.format)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    sys.exit(main())
