"""Text corpora from pinned Debian packages, as a local repository.

    debian_corpora(name = "debian_corpora")

./bazelw installs the packages (bible-kjv, bible-kjv-text, fortunes*); this
rule never reaches the network. It checks with `dpkg-query -W` that each
pinned version is installed, then writes:

    kjv.txt                    `bible -f gen1:1-rev22:21`: 31102 verses, one a
                               line, "Ge1:1 In the beginning ..." (checked)
    fortunes/<lang>/<file>     the fortune text files, by ISO 639-1 language
    fortunes.MANIFEST          "<lang>/<file> <package> <source path>" lines

and the filegroups @debian_corpora//:kjv and @debian_corpora//:fortunes
(data/corpus.h reads them).

Which fortune files: every regular file that `dpkg -L <package>` lists under
/usr/share/games/fortunes, except .dat files (strfile's binary index),
symlinks (the .u8 aliases, fortunes-it's top-level and fortunes-cs's cz/ and
sk/ aliases of the same files), .u8 files (fortunes-pl ships them as empty
placeholders) and the off/ folders (fortune's offensive sets, which `fortune`
itself leaves out unless asked). The language comes from the package, not the
folder, because fortunes-br puts its one file (brasil) at the top level next
to the English ones. A trailing ".fortunes" is dropped from file names
(fortunes-es) and characters outside [A-Za-z0-9._-] become '_' (fortunes-ru's
"M$"): Bazel's runfiles cannot hold every file name.

Every file in these package versions is valid UTF-8 (checked when the pins
were set; data/corpus.cc checks again and names any file that is not), so no
file is converted or skipped for its encoding.
"""

# (package, version as `dpkg-query -W` prints it, ISO 639-1 language or "").
_PACKAGES = [
    ("bible-kjv", "4.38", ""),
    ("bible-kjv-text", "4.38", ""),
    ("fortunes", "1:1.99.1-7.3", "en"),
    ("fortunes-min", "1:1.99.1-7.3", "en"),
    ("fortunes-de", "0.35-1", "de"),
    ("fortunes-es", "1.36", "es"),
    ("fortunes-it", "1.99-4.1", "it"),
    ("fortunes-br", "20220821", "pt"),
    ("fortunes-pl", "0.0.20130525-3", "pl"),
    ("fortunes-ru", "1.52-3.1", "ru"),
    ("fortunes-cs", "2.0.9-1.1", "cs"),
]

_KJV_VERSES = 31102

# Copies one package's fortune files into fortunes/<lang>/. Args: package, lang.
_COPY_FORTUNES = r"""
set -euo pipefail
pkg=$1 lang=$2
mkdir -p "fortunes/$lang"
dpkg -L "$pkg" | LC_ALL=C sort | while IFS= read -r src; do
  case "$src" in
    /usr/share/games/fortunes/*) ;;
    *) continue ;;
  esac
  case "$src" in
    *.dat | *.u8 | */off/*) continue ;;
  esac
  if [ -L "$src" ] || [ ! -f "$src" ]; then continue; fi
  name=$(basename "$src")
  name=${name%.fortunes}
  name=$(printf '%s' "$name" | LC_ALL=C tr -c 'A-Za-z0-9._-' '_')
  dest="fortunes/$lang/$name"
  if [ -e "$dest" ]; then
    echo "two fortune files map to $dest (the second is $src)" >&2
    exit 1
  fi
  cp "$src" "$dest"
  echo "$lang/$name $pkg $src" >>fortunes.MANIFEST
done
"""

def _fail_refetch(what):
    fail(("debian_corpora: %s. Run ./bazelw (any command, e.g. `./bazelw info`): " +
          "it installs the pinned Debian packages, then runs Bazel.") % what)

def _debian_corpora_impl(ctx):
    for package, version, _ in _PACKAGES:
        result = ctx.execute(["dpkg-query", "-W", "-f=${Version}", package])
        if result.return_code != 0 or not result.stdout:
            _fail_refetch("Debian package %s (version %s) is not installed" % (package, version))
        if result.stdout != version:
            _fail_refetch("Debian package %s is version %s, the workspace pins %s" %
                          (package, result.stdout, version))

    # -f: one verse a line with its reference ("Ge1:1 ..."), not the pretty
    # chapter layout; -l: a line width no verse reaches, so none is wrapped.
    # bible reads verse references from stdin only when given none as
    # arguments; stdin is closed here anyway, so it cannot wait for a TTY.
    result = ctx.execute(["bible", "-f", "-l1000000", "gen1:1-rev22:21"])
    if result.return_code != 0:
        _fail_refetch("`bible -f -l1000000 gen1:1-rev22:21` failed (exit %d): %s" %
                      (result.return_code, result.stderr))
    lines = result.stdout.splitlines()
    if len(lines) != _KJV_VERSES or not lines[0].startswith("Ge1:1 ") or not lines[-1].startswith("Rev22:21 "):
        _fail_refetch("`bible` printed %d lines from %r to %r, expected the %d verses Ge1:1 .. Rev22:21" %
                      (len(lines), lines[0] if lines else "", lines[-1] if lines else "", _KJV_VERSES))
    ctx.file("kjv.txt", result.stdout, executable = False)

    ctx.file("copy_fortunes.sh", _COPY_FORTUNES, executable = True)
    for package, _, lang in _PACKAGES:
        if not lang:
            continue
        result = ctx.execute(["bash", "copy_fortunes.sh", package, lang])
        if result.return_code != 0:
            fail("debian_corpora: copying %s's fortunes failed: %s" % (package, result.stderr))
    ctx.delete("copy_fortunes.sh")

    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", """# Generated by //third_party:debian_corpora.bzl from the installed Debian packages:
# {packages}
package(default_visibility = ["//visibility:public"])

filegroup(
    name = "kjv",
    srcs = ["kjv.txt"],
)

filegroup(
    name = "fortunes",
    srcs = glob(["fortunes/**"]),
)
""".format(packages = ", ".join(["%s=%s" % (p, v) for p, v, _ in _PACKAGES])))

debian_corpora = repository_rule(
    implementation = _debian_corpora_impl,
    # local: the inputs are the machine's installed packages, which Bazel
    # cannot see; re-running on every fetch keeps the version check honest
    # (an upgraded package fails the build instead of serving a stale copy).
    local = True,
)
