#!/usr/bin/env bash
# Installs every Debian package glassbox needs to build, test, fuzz and benchmark.
# Idempotent; run as root on a fresh Debian 12. Skips apt entirely when all packages are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libhwy-dev nlohmann-json3-dev libsentencepiece-dev libcli11-dev libfmt-dev
  libpcre2-dev zlib1g-dev libzstd-dev libsqlite3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang lld llvm libclang-rt-14-dev
  python3 python3-torch python3-numpy python3-jinja2
  chromium chromium-driver
)
# node + npm run the byte-level BPE references (tests/reference/bpe). A node that bundles its own
# npm (NodeSource's) is kept: Debian's npm package would conflict with it.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} Debian packages already installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The pinned npm packages (package-lock.json; no install scripts) of the BPE reference and of the
# web tests (puppeteer-core driving Debian's chromium; the openai client), each skipped when its
# node_modules was installed from this very lockfile. Without them those tests skip.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
npm_ci() {  # npm_ci DIR WHAT
  local dir="$1" what="$2"
  local stamp="$dir/node_modules/.glassbox-lock.sha256"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup: $what node modules up to date"
  elif npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error; then
    echo "$want" >"$stamp"
  else
    echo "setup: npm ci failed in $dir; the $what tests will be skipped" >&2
  fi
}
if command -v npm >/dev/null 2>&1; then
  npm_ci "$ROOT/tests/reference/bpe" "BPE reference"
  npm_ci "$ROOT/tests/web" "web explorer"
fi

# llama.cpp's headers (include/, ggml/include/) for the llama.cpp reference checks
# (tests/reference/llama_cpp), at the release of the libraries in ../shared/anchors/llama.cpp-0ad4a86:
# the npm package node-llama-cpp 3.22.1 carries that source as a git bundle. Checked against a
# pinned sha256; without them those checks skip. Into build/deps/ (not tracked).
LLAMA_CPP_HEADERS="$ROOT/build/deps/llama.cpp-v0.5.0"
llama_cpp_headers() {
  local tgz=node-llama-cpp-3.22.1.tgz tmp
  local want=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
  if [ -f "$LLAMA_CPP_HEADERS/include/llama.h" ]; then
    echo "setup: llama.cpp headers present"
    return 0
  fi
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack node-llama-cpp@3.22.1 --silent --no-audit --no-fund >/dev/null) &&
     echo "$want  $tmp/$tgz" | sha256sum -c --quiet &&
     tar -xzf "$tmp/$tgz" -C "$tmp" package/llama/gitRelease.bundle &&
     git clone -q --bare "$tmp/package/llama/gitRelease.bundle" "$tmp/src.git" &&
     mkdir -p "$LLAMA_CPP_HEADERS" &&
     git --git-dir="$tmp/src.git" archive HEAD include ggml/include LICENSE |
       tar -x -C "$LLAMA_CPP_HEADERS"; then
    echo "setup: llama.cpp headers in $LLAMA_CPP_HEADERS"
  else
    rm -rf "$LLAMA_CPP_HEADERS"
    echo "setup: could not fetch llama.cpp's headers; the llama.cpp reference checks will skip" >&2
  fi
  rm -rf "$tmp"
}
if command -v npm >/dev/null 2>&1; then
  llama_cpp_headers
fi

# @huggingface/jinja, Hugging Face's JavaScript Jinja: the independent renderer of the
# chat-template reference check (tests/reference/jinja). The npm tarball at a pinned version,
# checked against its sha256 and unpacked into build/deps/ (it has no dependencies). Without it
# that check skips.
HF_JINJA_DIR="$ROOT/build/deps/huggingface-jinja-0.5.13"
hf_jinja() {
  local tgz=huggingface-jinja-0.5.13.tgz tmp
  local want=f191fb8332ae4d5cdf73682ced93ccc58c25021cf338ae0795f7652985c2c0e1
  if [ -f "$HF_JINJA_DIR/package.json" ]; then
    echo "setup: @huggingface/jinja present"
    return 0
  fi
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack @huggingface/jinja@0.5.13 --silent --no-audit --no-fund >/dev/null) &&
     echo "$want  $tmp/$tgz" | sha256sum -c --quiet &&
     mkdir -p "$tmp/unpacked" && tar -xzf "$tmp/$tgz" -C "$tmp/unpacked" --strip-components=1 &&
     mkdir -p "$(dirname "$HF_JINJA_DIR")" && mv "$tmp/unpacked" "$HF_JINJA_DIR"; then
    echo "setup: @huggingface/jinja in $HF_JINJA_DIR"
  else
    rm -rf "$HF_JINJA_DIR"
    echo "setup: could not fetch @huggingface/jinja; the chat-template reference check will skip" >&2
  fi
  rm -rf "$tmp"
}
if command -v npm >/dev/null 2>&1; then
  hf_jinja
fi
echo "setup: done"
