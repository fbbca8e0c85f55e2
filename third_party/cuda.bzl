"""The CUDA toolkit as a local repository, for --config=cuda.

CUDA_HOME selects the toolkit (default /usr/local/cuda). The repository
links its include/ and lib64/ and declares @cuda//:cudart (headers, CUB
included, and the runtime library) and defs.bzl's NVCC (the compiler's path,
"" when there is no toolkit: the CUDA targets are tagged manual, so
`bazel test //...` never builds them, and a machine without CUDA still
loads every package).
"""

def _cuda_impl(ctx):
    root = ctx.os.environ.get("CUDA_HOME", "/usr/local/cuda")
    nvcc = ctx.path(root + "/bin/nvcc")
    found = nvcc.exists
    if found:
        ctx.symlink(root + "/include", "include")
        ctx.symlink(root + "/lib64", "lib64")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("defs.bzl", 'NVCC = "%s"\n' % (str(nvcc) if found else ""))
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

# The CUDA runtime from {root}{missing}.
cc_library(
    name = "cudart",
    hdrs = glob(["include/**"], allow_empty = True),
    includes = ["include"],
    linkopts = ["-L{root}/lib64", "-Wl,-rpath,{root}/lib64", "-lcudart"],
)
""".format(root = root, missing = "" if found else " (not found: nothing here builds)"))

cuda_repository = repository_rule(
    implementation = _cuda_impl,
    environ = ["CUDA_HOME"],
    local = True,
)
