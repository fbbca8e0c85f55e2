"""The native C++ rules under the names rules_cc exports (offline stand-in).

cc_binary, cc_library and cc_test also force-include LibTorch's precompiled
header (//third_party:torch_pch; third_party/precompiled_header.bzl says
why) into a target that depends on @libtorch directly, has sources, and
sets no copts of its own: a target with its own copts (the kernels' -O3
-mavx2, -fopenmp) could not use a header precompiled without them.
"""

_TORCH = ["@libtorch", "@libtorch//:libtorch"]
_TORCH_PCH = "//third_party:torch_pch"

def _with_torch_pch(kwargs):
    deps = kwargs.get("deps", [])
    if type(deps) != "list" or not [d for d in deps if d in _TORCH]:
        return kwargs
    if "copts" in kwargs or not kwargs.get("srcs"):
        return kwargs
    kwargs = dict(kwargs)
    kwargs["deps"] = deps + [_TORCH_PCH]
    kwargs["copts"] = ["-include", "third_party/torch_pch.h"]
    return kwargs

def cc_binary(**kwargs):
    native.cc_binary(**_with_torch_pch(kwargs))

def cc_library(**kwargs):
    native.cc_library(**_with_torch_pch(kwargs))

def cc_test(**kwargs):
    native.cc_test(**_with_torch_pch(kwargs))

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_proto_library(**kwargs):
    native.cc_proto_library(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)
