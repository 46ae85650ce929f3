#!/usr/bin/env bash
# Builds the Python venv that runs Autobahn|Testsuite's fuzzing client, in
# target/autobahn-venv (AUTOBAHN_VENV to put it elsewhere). Does nothing when
# the venv is already built from the same pins and converter.
#
#   scripts/autobahn-setup.sh          AUTOBAHN_FORCE=1 rebuilds
#
# The suite (PyPI autobahntestsuite 25.10.1) is Python 2 code pinned to
# autobahn 0.10.9. Both sdists come from PyPI, are checked against the hashes
# below, and tests/autobahn/port_suite.py converts them into the venv; their
# dependencies are current Python 3 releases, pinned. Needs python3 3.9-3.12
# (the conversion uses the standard library's lib2to3, gone in 3.13) with venv
# and lib2to3 (installed with apt when missing, as root) and PyPI; a C compiler is optional
# (wsaccel, the C masking and UTF-8 validation autobahn uses when present).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${AUTOBAHN_VENV:-target/autobahn-venv}
PYTHON=${PYTHON:-python3}
SUITE=autobahntestsuite-25.10.1
SUITE_SHA256=b083d6e15330fc16f3e5f0975cce2b15f21bfa0c6db09547316b1852c6dbd6df
AUTOBAHN=autobahn-0.10.9
AUTOBAHN_SHA256=3fecc1e2a26a0421128ddcfb4e577f0bc669dd65d0e0fdad1c773965cbcef75a
# The set the converted suite was checked with (docs/conformance.md).
PINS=(
  Twisted==26.10.0 txaio==26.6.1 six==1.17.0 zope.interface==8.7 attrs==26.1.0
  Automat==25.4.16 constantly==23.10.4 hyperlink==21.0.0 idna==3.20
  Incremental==24.11.0 typing_extensions==4.16.0 Jinja2==3.1.6 MarkupSafe==3.0.4
  pyOpenSSL==26.4.0 service-identity==26.1.0 cryptography==50.0.2 cffi==2.1.1
  pycparser==3.12 packaging==26.3 setuptools==66.1.1
)
ACCELERATOR=wsaccel==0.6.7

say() { echo "autobahn-setup: $*"; }

# What the venv is built from; a change to any of it rebuilds the venv.
fingerprint() {
  {
    echo "$SUITE $SUITE_SHA256 $AUTOBAHN $AUTOBAHN_SHA256 ${PINS[*]} $ACCELERATOR"
    "$PYTHON" --version 2>&1
    cat tests/autobahn/port_suite.py tests/autobahn/bytes_compat.py
  } | sha256sum | cut -d' ' -f1
}

# The venv imports the converted suite (the check fuzzingclient.py relies on).
usable() {
  "$VENV/bin/python" -c 'import txaio; txaio.use_twisted(); import autobahntestsuite.fuzzing' >/dev/null 2>&1
}

# Debian ships venv's ensurepip and lib2to3 in packages of their own.
missing=()
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
"$PYTHON" -W ignore -c 'import lib2to3.main' 2>/dev/null || missing+=(python3-lib2to3)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "$PYTHON lacks what the venv needs; install ${missing[*]} (needs root)"; exit 2; }
  say "installing with apt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! "$PYTHON" -W ignore -c 'import sys, lib2to3.main; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
  say "$PYTHON is $("$PYTHON" --version 2>&1): the conversion needs Python 3.9-3.12 with lib2to3 (set PYTHON=...)"
  exit 2
fi

STAMP="$VENV/.built-from"
WANT=$(fingerprint)
if [ "${AUTOBAHN_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && usable; then
  say "up to date: $VENV"
  exit 0
fi

began=$(date +%s)
say "building $VENV with $("$PYTHON" --version 2>&1)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
say "installing ${#PINS[@]} pinned packages from PyPI"
"${PIP[@]}" install "${PINS[@]}"
if ! "${PIP[@]}" install "$ACCELERATOR" > "$VENV/wsaccel.log" 2>&1; then
  say "$ACCELERATOR did not build (see $VENV/wsaccel.log); autobahn masks in Python, 9.* takes longer"
fi

SRC="$VENV/sdists"
mkdir -p "$SRC"
say "downloading the $SUITE and $AUTOBAHN sdists"
"${PIP[@]}" download --no-deps --no-binary :all: --dest "$SRC" "${SUITE%-*}==${SUITE##*-}" "${AUTOBAHN%-*}==${AUTOBAHN##*-}"
echo "$SUITE_SHA256  $SRC/$SUITE.tar.gz
$AUTOBAHN_SHA256  $SRC/$AUTOBAHN.tar.gz" | sha256sum --quiet -c - || { say "an sdist does not match its pinned sha256"; exit 2; }
tar -xzf "$SRC/$SUITE.tar.gz" -C "$SRC"
tar -xzf "$SRC/$AUTOBAHN.tar.gz" -C "$SRC"

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$VENV/bin/python" tests/autobahn/port_suite.py "$SRC/$SUITE" "$SRC/$AUTOBAHN" "$SITE"
usable || { say "the converted suite does not import; try: $VENV/bin/python -c 'import txaio; txaio.use_twisted(); import autobahntestsuite.fuzzing'"; exit 2; }
echo "$WANT" > "$STAMP"
say "ready in $(( $(date +%s) - began )) s: $VENV"
