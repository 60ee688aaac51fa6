#!/usr/bin/env bash
# Installs llmfs for production use (as root):
#   /usr/local/bin/llmfs                         the binary (cargo build --release)
#   /usr/local/lib/llmfs/libonnxruntime.so.1.31.1  the pinned ONNX Runtime (found
#                                                by the binary as ../lib/llmfs/)
#   /sbin/mount.fuse.llmfs, /sbin/mount.llmfs    mount(8) helper symlinks (fstab)
#   /etc/systemd/system/llmfs@.service           one service per volume
#   /etc/llmfs/archive.conf.example              example volume config
#   /usr/local/share/man/man1/llmfs*.1           man pages
#   /usr/local/share/bash-completion/completions/llmfs
# and runs `systemctl daemon-reload` when systemd is running. Idempotent; an
# existing /etc/llmfs/*.conf is never touched.
#
#   systemd/install.sh                           # build and install
#   LLMFS_BIN=path/to/llmfs systemd/install.sh   # install a built binary
#   PREFIX=/opt/llmfs systemd/install.sh         # instead of /usr/local
#   DESTDIR=/tmp/stage systemd/install.sh        # staged (packaging): no root
#                                                # needed, no daemon-reload
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
bin=${LLMFS_BIN:-}
if [ -z "$dest" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (or set DESTDIR for a staged install)" >&2
  exit 1
fi
if [ -z "$bin" ]; then
  cargo build --release --locked
  bin=target/release/llmfs
fi

install -D -m 0755 "$bin" "$dest$prefix/bin/llmfs"
# The runtime library cargo put next to the binary (build.rs, pinned by
# version and sha256).
ortlib=$(dirname "$bin")/libonnxruntime.so.1.31.1
if [ ! -f "$ortlib" ]; then
  echo "install.sh: $ortlib not found (build with cargo first)" >&2
  exit 1
fi
install -D -m 0644 "$ortlib" "$dest$prefix/lib/llmfs/libonnxruntime.so.1.31.1"
# A --features cuda build also carries the CUDA execution provider.
for provider in "$(dirname "$bin")"/libonnxruntime_providers_*.so; do
  [ -f "$provider" ] && install -m 0644 "$provider" "$dest$prefix/lib/llmfs/"
done
[ -d "$dest/sbin" ] || install -d -m 0755 "$dest/sbin"
for helper in mount.fuse.llmfs mount.llmfs; do
  ln -sfn "$prefix/bin/llmfs" "$dest/sbin/$helper"
done

install -d -m 0755 "$dest/etc/systemd/system"
sed "s#/usr/local/bin/llmfs#$prefix/bin/llmfs#" systemd/llmfs@.service \
  > "$dest/etc/systemd/system/llmfs@.service"
chmod 0644 "$dest/etc/systemd/system/llmfs@.service"
install -d -m 0755 "$dest/etc/llmfs"
install -m 0644 systemd/archive.conf.example "$dest/etc/llmfs/archive.conf.example"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dest$prefix/bin/llmfs" generate man "$tmp/man" >/dev/null
install -d -m 0755 "$dest$prefix/share/man/man1"
install -m 0644 "$tmp"/man/*.1 "$dest$prefix/share/man/man1/"
"$dest$prefix/bin/llmfs" generate completions bash "$tmp/completions" >/dev/null
install -D -m 0644 "$tmp/completions/llmfs.bash" \
  "$dest$prefix/share/bash-completion/completions/llmfs"

if [ -z "$dest" ]; then
  if command -v mandb >/dev/null; then mandb -q "$prefix/share/man" 2>/dev/null || true; fi
  # systemctl exists in containers without systemd as PID 1: reload only
  # when systemd is actually running.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
fi

cat <<MSG
installed $dest$prefix/bin/llmfs, $dest/sbin/mount.fuse.llmfs, $dest/etc/systemd/system/llmfs@.service
next: cp /etc/llmfs/archive.conf.example /etc/llmfs/archive.conf, edit it, then
      systemctl enable --now llmfs@archive
MSG
