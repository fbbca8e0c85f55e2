"""saelab_fuzz_target(): one parser fuzz target = one <name>_fuzzer.cc + this call."""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

def saelab_fuzz_target(name, deps, data = [], size = "small", **kwargs):
    """Declares the three targets of fuzz target `name` (e.g. "npy").

    Args:
      name: the target's name; its source is <name>_fuzzer.cc, defining
        LLVMFuzzerTestOneInput, its seed corpus fuzz/corpus/<name>/ and its
        crash inputs fuzz/crashes/<name>/.
      deps: the libraries the fuzz function calls.
      data: files the fuzz function reads besides its input.
      size: the replay test's size.
      **kwargs: passed on to the replay cc_test (tags, timeout, ...).

    Declares:
      <name>_fuzz_lib     cc_library with the fuzz function.
      <name>_fuzzer       the fuzzer: libFuzzer's main under --config=fuzz
                          (`bazel-bin/fuzz/<name>_fuzzer -max_total_time=60
                          CORPUS`), fuzz/replay_main.cc otherwise (it then
                          replays the files it is given).
      <name>_replay_test  replays the seed corpus and every crash input
                          through the fuzz function (default toolchain, part
                          of `bazel test //...`; under --config=fuzz, with
                          ASan and UBSan).
    """
    lib = name + "_fuzz_lib"
    cc_library(
        name = lib,
        srcs = [name + "_fuzzer.cc"],
        data = data,
        deps = deps + [
            "//fuzz:fuzz_support",
            "@system_libs//:absl",
        ],
        # Nothing in the library is referenced by name before libFuzzer's
        # own main, which is linked after it: keep the object whatever.
        alwayslink = True,
    )
    cc_binary(
        name = name + "_fuzzer",
        deps = [":" + lib] + select({
            "//fuzz:fuzzing": [],
            "//conditions:default": ["//fuzz:replay_main"],
        }),
        # Only the fuzzer binary links libFuzzer (whose main() would clash
        # with the replay main of the tests).
        linkopts = select({
            "//fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    corpus = "fuzz/corpus/" + name
    crashes = "fuzz/crashes/" + name
    cc_test(
        name = name + "_replay_test",
        size = size,
        args = ["--corpus=" + corpus, "--regressions=" + crashes],
        data = native.glob(["corpus/%s/**" % name, "crashes/%s/**" % name]) + data,
        deps = [
            ":" + lib,
            "//fuzz:replay_main",
        ],
        **kwargs
    )
