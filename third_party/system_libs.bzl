"""One cc_library per Debian system library, over /usr (no vendored sources).

Headers live in /usr/include, which the auto-configured C++ toolchain already
treats as a built-in include directory, so only link options are declared.
"""

_LIBDIR = "/usr/lib/x86_64-linux-gnu"

def _system_libs_impl(ctx):
    # Abseil ships ~60 small shared libraries; link those present, and let
    # --as-needed drop the ones a binary does not use.
    absl = []
    listing = ctx.execute(["sh", "-c", "ls %s/libabsl_*.so" % _LIBDIR])
    for path in listing.stdout.strip().split("\n"):
        name = path.split("/")[-1]
        if name.startswith("lib") and name.endswith(".so"):
            absl.append('"-l%s"' % name[3:-3])
    if not absl:
        fail("libabsl-dev is not installed (no %s/libabsl_*.so); run ./bazelw" % _LIBDIR)
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "absl",
    linkopts = ["-Wl,--as-needed"] + [{absl}] + ["-Wl,--no-as-needed"],
)

cc_library(
    name = "re2",
    linkopts = ["-lre2"],
)

cc_library(
    name = "gtest",
    linkopts = ["-lgmock", "-lgtest", "-pthread"],
)

cc_library(
    name = "gtest_main",
    linkopts = ["-lgtest_main"],
    deps = [":gtest"],
)

cc_library(
    name = "benchmark",
    linkopts = ["-lbenchmark", "-pthread"],
)

cc_library(
    name = "benchmark_main",
    linkopts = ["-lbenchmark_main"],
    deps = [":benchmark"],
)

cc_library(
    name = "openssl_crypto",
    linkopts = ["-lcrypto"],
)

cc_library(
    name = "liblinear",
    linkopts = ["-llinear"],
)

# Header-only.
cc_library(
    name = "nlohmann_json",
)

# cpp-httplib, built by Debian with OpenSSL, zlib and Brotli: its header
# must see the same switches (its pkg-config Cflags).
cc_library(
    name = "httplib",
    defines = [
        "CPPHTTPLIB_OPENSSL_SUPPORT",
        "CPPHTTPLIB_ZLIB_SUPPORT",
        "CPPHTTPLIB_BROTLI_SUPPORT",
    ],
    linkopts = ["-lcpp-httplib", "-pthread"],
)
""".format(absl = ", ".join(absl)))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
)
