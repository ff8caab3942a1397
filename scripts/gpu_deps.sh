#!/usr/bin/env bash
# Downloads, on a Debian bookworm machine with apt, the .deb files of the C++ build, link and
# run-time dependencies that a GPU host's image lacks (it has nvcc, CMake, ninja and PyTorch,
# whose LibTorch the build uses, but none of the -dev packages) into .gpu_deps/ (git-ignored).
# The device tool carries that folder (`carry: [".gpu_deps"]`) and scripts/gpu_check.sh unpacks
# it into a private prefix with `dpkg -x` (docs/kernels.md). Bookworm's libraries need glibc 2.36
# and libstdc++ from GCC 12 at most, so they run on newer systems (Ubuntu 24.04: glibc 2.39).
# ICU is repacked without its static libraries and the libraries grpo does not link (i18n, io,
# test, tu): 19 MB of .debs become ~9 MB. Usage: bash scripts/gpu_deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu_deps

# What cmake/GrpoDependencies.cmake, src/text, src/reward and tests/ find (-dev: headers, CMake
# configs, .pc files, .so links) with the libraries they link at run time. pkgconf is the
# pkg-config that FindPkgConfig runs. Not needed: Threads (glibc), LibTorch and CUDA (the
# image's PyTorch and toolkit), libprotobuf-lite (bookworm's libsentencepiece links its own
# copy), pcre2's 16/32-bit and posix libraries (libpcre2-dev's .so links to them stay dangling).
packages=(
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  nlohmann-json3-dev libcli11-dev
  libyaml-cpp-dev libyaml-cpp0.7
  libsentencepiece-dev libsentencepiece0
  libgtest-dev libgmock-dev
  libpcre2-dev libpcre2-8-0
  libicu-dev libicu72
  zlib1g-dev zlib1g
  libseccomp-dev libseccomp2
  pkgconf pkgconf-bin libpkgconf3
)

# shellcheck source=/dev/null
. /etc/os-release
if [[ "${VERSION_CODENAME:-}" != bookworm ]]; then
  echo "gpu_deps: this is ${PRETTY_NAME:-an unknown system}, not Debian bookworm: the packages" \
    "must be bookworm's (glibc 2.36) to run on the GPU image" >&2
  exit 1
fi

# The newest version of each package that Debian's bookworm suites (bookworm, -updates,
# -security) offer, named exactly, so that no other configured repository can supply it.
versions() {
  local p v
  for p in "${packages[@]}"; do
    v=$(apt-cache madison "$p" 2> /dev/null |
      awk -F'|' '$3 ~ /debian(-security)?\/? bookworm(-updates|-security)?\// {
        gsub(/ /, "", $2); print $2; exit }')
    [[ -n "$v" ]] || return 1
    echo "$p=$v"
  done
}
if ! specs=$(versions); then
  echo "gpu_deps: apt lists lack some package; running apt-get update"
  apt-get update -qq
  specs=$(versions) || {
    echo "gpu_deps: a package is not in Debian bookworm's lists" >&2
    exit 1
  }
fi

tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# shellcheck disable=SC2086
(cd "$tmp" && apt-get download -q $specs 2>&1 | grep -v "^W: Download is performed unsandboxed")

# A trimmed ICU: the shared libuc and libdata with their headers, .so links and icu-uc.pc.
trim() {
  local deb=$1 keep=$2 root="$tmp/trim"
  rm -rf "$root"
  dpkg-deb -R "$deb" "$root"
  find "$root" -path "$root/DEBIAN" -prune -o \( -type f -o -type l \) -print |
    grep -vE "$keep" | xargs -r rm -f
  rm -f "$root/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz -b "$root" "${deb%.deb}.trimmed.deb" > /dev/null
  rm -rf "$root" "$deb"
}
trim "$(ls "$tmp"/libicu72_*.deb)" '/libicu(uc|data)\.so|/usr/share/doc/'
trim "$(ls "$tmp"/libicu-dev_*.deb)" \
  '/usr/include/|/libicu(uc|data)\.so$|/pkgconfig/icu-uc\.pc$|/usr/share/doc/'

# Every library must run on glibc 2.36 (what bookworm has; newer systems accept it).
for f in "$tmp"/*.deb; do
  glibc=$(dpkg-deb -f "$f" Depends | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
  if [[ -n "$glibc" ]] && dpkg --compare-versions "$glibc" gt 2.36; then
    echo "gpu_deps: $(basename "$f") needs glibc $glibc > 2.36" >&2
    exit 1
  fi
done

# File names in letters, digits, '.', '_' and '-' only (the epoch's '%3a', the '+' of versions):
# the device tool's transfers accept those for certain.
for f in "$tmp"/*.deb; do
  n=$(basename "$f" | sed 's/%3a/_/g; s/[^A-Za-z0-9._-]/_/g')
  [[ "$tmp/$n" == "$f" ]] || mv "$f" "$tmp/$n"
done
rm -rf "$dest"
mv "$tmp" "$dest"
ls -l "$dest"
echo "gpu_deps: $(find "$dest" -name '*.deb' | wc -l) packages, $(du -sh "$dest" | cut -f1) in $dest"
