#!/bin/bash
# Install the bounce factory's MTAs (tests/factory/) into a private root, beside the
# system's Postfix and without touching it.
#
# Exim 4, Sendmail 8.17, OpenSMTPD and dma conflict with postfix as Debian packages
# (they all provide mail-transport-agent), so `apt-get install` of any of them would
# remove Postfix. Instead their .deb files are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x` into $FACTORY_ROOT/root; their maintainer scripts never
# run. What those scripts would have done and the factory needs is done here: the system
# users the binaries look up by name. The shared libraries they link against are
# ordinary library packages (no conflict with Postfix) and are installed with apt-get.
#
# Idempotent and fast when done: a stamp file records the package versions and this
# script's checksum; when both match, the script only checks the binaries and exits.
# Needs root (apt-get, useradd). FACTORY_ROOT defaults to /opt/bouncefilter-factory.
set -euo pipefail

FACTORY_ROOT=${FACTORY_ROOT:-/opt/bouncefilter-factory}
ROOT="$FACTORY_ROOT/root"
DEBS="$FACTORY_ROOT/debs"
STAMP="$FACTORY_ROOT/installed"

# The MTAs' own packages, unpacked only; exim4-base and exim4-config bring nothing the
# factory uses but are cheap, and sendmail-cf holds the m4 files sendmail.cf is built from.
MTA_PACKAGES=(exim4-daemon-light sendmail-bin sendmail-base sendmail-cf opensmtpd dma)
# The binaries the factory runs, relative to $ROOT: each must resolve all its libraries.
BINARIES=(usr/sbin/exim4 usr/libexec/sendmail/sendmail usr/sbin/smtpd usr/sbin/smtpctl usr/sbin/dma)
# Everything else comes from apt normally: m4 builds sendmail.cf; the rest are the
# libraries the binaries link against (library packages do not conflict with Postfix).
SYSTEM_PACKAGES=(m4 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0
    libcrypt1 libldap-2.5-0 liblockfile1 libsasl2-2 libssl3 libwrap0 libevent-2.1-7 libpam0g zlib1g)
# System users the binaries look up by the names compiled into them (their packages'
# postinst scripts would have created them): exim4 runs as Debian-exim, OpenSMTPD's
# processes as opensmtpd and its queue as opensmtpq.
SYSTEM_USERS=(Debian-exim opensmtpd opensmtpq)

say() { echo "factory/install.sh: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (apt-get, useradd); skipping" >&2
    exit 0
fi

check_binaries() {
    local binary missing
    for binary in "${BINARIES[@]}"; do
        [ -x "$ROOT/$binary" ] || { say "missing $ROOT/$binary" >&2; return 1; }
        missing=$(ldd "$ROOT/$binary" | grep 'not found' || true)
        [ -z "$missing" ] || { say "$binary: unresolved libraries: $missing" >&2; return 1; }
    done
}

versions() {
    local package
    for package in "${MTA_PACKAGES[@]}"; do
        echo "$package $(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')"
    done
    sha256sum "$0" | cut -d' ' -f1
}

missing_packages() {
    local package
    for package in "${SYSTEM_PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = installed ] || echo "$package"
    done
}

# Fast path: the stamp was written by this very script (its checksum is the last line) and
# everything is still in place. Package versions are not asked (an apt-cache call each);
# delete the stamp, or the whole $FACTORY_ROOT, to fetch newer ones.
if [ -f "$STAMP" ] && [ "$(tail -n 1 "$STAMP")" = "$(sha256sum "$0" | cut -d' ' -f1)" ] \
    && [ -z "$(missing_packages)" ] && check_binaries 2>/dev/null \
    && [ -d /var/spool/smtpd ] && [ -d /var/lib/opensmtpd/empty ] && [ -d /etc/dma ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
updated=no
apt_update() { [ "$updated" = yes ] || { apt-get update -qq; updated=yes; }; }

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    apt_update
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$DEBS"
rm -f "$DEBS"/*.deb
# apt-get download fetches the candidate version into the current folder; _apt cannot
# write to a root-owned folder, so it downloads unsandboxed (a harmless warning, hidden).
if ! (cd "$DEBS" && apt-get download -qq "${MTA_PACKAGES[@]}" 2>/dev/null); then
    apt_update
    (cd "$DEBS" && apt-get download -qq "${MTA_PACKAGES[@]}" 2>/dev/null)
fi

rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for deb in "$DEBS"/*.deb; do
    dpkg-deb -x "$deb" "$ROOT.new"
done
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
chmod 755 "$FACTORY_ROOT"

for user in "${SYSTEM_USERS[@]}"; do
    if ! getent passwd "$user" >/dev/null; then
        say "useradd $user"
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
    fi
done

# Mount points for the compiled-in paths the factory bind-mounts its own folders onto
# (tests/factory/mtas.py), and OpenSMTPD's empty chroot: empty folders the packages own.
mkdir -p /var/spool/smtpd /var/lib/opensmtpd/empty /etc/dma

check_binaries
versions > "$STAMP"
say "installed in $ROOT: $(cut -d' ' -f1,2 "$STAMP" | head -n "${#MTA_PACKAGES[@]}" | tr '\n' ' ')"
