"""LibTorch as a local repository.

LIBTORCH_DIR selects the installation: unset means Debian's libtorch-dev under
/usr (CPU only); a CUDA machine points it at the `torch` package directory of
a PyTorch install (python -c "import torch; print(torch.__path__[0])").
The repository symlinks the four header trees and declares them, so builds
stay correct in the sandbox whichever LibTorch is used.
"""

def _libtorch_impl(ctx):
    root = ctx.os.environ.get("LIBTORCH_DIR", "/usr")
    if ctx.path(root + "/lib/libtorch.so").exists:
        libdir = root + "/lib"
    elif ctx.path(root + "/lib/x86_64-linux-gnu/libtorch.so").exists:
        libdir = root + "/lib/x86_64-linux-gnu"
    else:
        fail("LibTorch not found under LIBTORCH_DIR=%s (no lib/libtorch.so); " % root +
             "run ./bazelw to install libtorch-dev, or point LIBTORCH_DIR at a LibTorch")
    for sub in ["torch", "ATen", "c10", "caffe2"]:
        src = ctx.path(root + "/include/" + sub)
        if src.exists:
            ctx.symlink(src, "include/" + sub)
    cuda = ctx.path(libdir + "/libtorch_cuda.so").exists
    libs = ["-ltorch", "-ltorch_cpu", "-lc10"]
    if cuda:
        libs = ["-ltorch", "-ltorch_cuda", "-ltorch_cpu", "-lc10_cuda", "-lc10"]
    # Which LibTorch this is, as a define on every compile that uses it: the
    # precompiled header (//third_party:torch_pch) hides LibTorch's headers
    # from the dependency files GCC writes, so a switch to another LibTorch
    # must change the compile command lines for Bazel to recompile.
    version_h = ctx.path(root + "/include/torch/csrc/api/include/torch/version.h")
    version = ctx.read(version_h) if version_h.exists else ""
    libtorch_id = hash("%s|%s|%s|%s" % (root, libdir, cuda, version))
    if libtorch_id < 0:
        libtorch_id = -libtorch_id
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

# LibTorch from {root} ({kind}).
cc_library(
    name = "libtorch",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"]),
    includes = ["include", "include/torch/csrc/api/include"],
    defines = ["SAELAB_LIBTORCH_ID={libtorch_id}"],
    # --no-as-needed: libtorch_cuda registers its kernels in static
    # initialisers, and nothing references it by symbol.
    linkopts = ["-L{libdir}", "-Wl,-rpath,{libdir}", "-Wl,--no-as-needed"] + {libs} + ["-pthread"],
)

# True when this LibTorch was built with CUDA.
config_setting(
    name = "has_cuda",
    values = {{"define": "saelab_cuda=1"}},
)
""".format(libtorch_id = libtorch_id, root = root, kind = "CUDA" if cuda else "CPU", libdir = libdir, libs = str(libs)))

libtorch_repository = repository_rule(
    implementation = _libtorch_impl,
    environ = ["LIBTORCH_DIR"],
    local = True,
)
