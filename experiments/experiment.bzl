"""saelab_experiment(): one experiment target = one textproto + this call."""

load("@rules_cc//cc:defs.bzl", "cc_binary")

def saelab_experiment(name, config = None, data = [], **kwargs):
    """A `bazel run`-able experiment: the shared experiment main over one config.

    Args:
      name: the target name, e.g. "synthetic_recovery".
      config: the ExperimentConfig textproto in this package; default
        "<name>.textproto".
      data: what the experiment reads at run time besides its config, e.g.
        "//data/text:corpora" or "//data/models:saelab_ref_lm".
      **kwargs: passed on to cc_binary (tags, visibility, ...).

    The binary is //experiments:main with every registered experiment
    linked in; its plot scripts and their generated result module are
    runfiles, so `bazel run //experiments:<name>` works from a fresh clone.
    """
    if config == None:
        config = name + ".textproto"
    cc_binary(
        name = name,
        args = ["--config=%s/%s" % (native.package_name(), config)],
        data = [
            config,
            "//harness:result_py_proto",
            "//results:plot_scripts",
        ] + data,
        deps = ["//experiments:main"],
        **kwargs
    )
