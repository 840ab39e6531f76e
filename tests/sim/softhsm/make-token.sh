#!/usr/bin/env bash
# make-token.sh OUTDIR PROFILE_DIR [LABEL] — a SoftHSM2 token that looks like a
# CPS card of the test PKI (tests/sim/pki, docs/simulation.md §5), for the
# PKCS#11 backend of cachetd (host/daemon/card/card_pkcs11.c) and its tests.
#
# Writes OUTDIR/softhsm2.conf (token store OUTDIR/tokens, file backend) and
# one token labelled LABEL (default: the profile's `label`, e.g. "CPS3 TEST"):
#   user PIN = the profile's `pin`, SO PIN = the profile's `puk`;
#   private keys, as on a real CPS3 (shared/spec/cpx-card.md part A item 2):
#     CKA_ID 02 "CPS_PRIV_AUT" (auth.key.pem), CKA_ID 01 "CPS_PRIV_SIG" (sign.key.pem);
#   certificates, labelled as the virtual card labels them (tests/sim/card):
#     CKA_ID 02 "Certificat d'authentification CPS", 01 "Certificat de signature CPS",
#     03 "Certificat AC CPS" (the issuing CA, no key).
# Also writes OUTDIR/token.info (`label =`, `serial =`, `pin =`, `so_pin =`,
# `slot =`) and prints the path of the SOFTHSM2_CONF file on stdout.
#
# Hermetic: touches nothing outside OUTDIR (SOFTHSM2_CONF is set for the tools
# it runs; the host's /etc/softhsm is never read). OUTDIR must not hold a token yet.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR PROFILE_DIR [LABEL]" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
OUT=$1
PROFILE=$2

die() { echo "make-token: $*" >&2; exit 1; }

MODULE=${CACHET_SOFTHSM2_MODULE:-}
if [ -z "$MODULE" ]; then
    for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
             /usr/local/lib/softhsm/libsofthsm2.so; do
        if [ -f "$m" ]; then MODULE=$m; break; fi
    done
fi
if [ -z "$MODULE" ] || [ ! -f "$MODULE" ]; then
    die "libsofthsm2.so not found (set CACHET_SOFTHSM2_MODULE)"
fi
command -v softhsm2-util >/dev/null || die "softhsm2-util not found (Debian package softhsm2)"
command -v pkcs11-tool >/dev/null || die "pkcs11-tool not found (Debian package opensc)"

conf_get() { # conf_get KEY: the value of "KEY = value" in profile.conf
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$PROFILE/profile.conf" | head -n 1
}
[ -f "$PROFILE/profile.conf" ] || die "$PROFILE/profile.conf not found"
PIN=$(conf_get pin)
SO_PIN=$(conf_get puk)
LABEL=${3:-$(conf_get label)}
[ -n "$PIN" ] || die "no 'pin =' in $PROFILE/profile.conf"
[ -n "$SO_PIN" ] || SO_PIN=12345678
[ -n "$LABEL" ] || LABEL="CPS TEST"
[ ${#LABEL} -le 32 ] || die "label longer than 32 characters: $LABEL"
for f in auth.key.pem sign.key.pem auth.crt.der sign.crt.der ca.crt.der; do
    [ -f "$PROFILE/$f" ] || die "$PROFILE/$f not found"
done

mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd)
[ ! -e "$OUT/tokens" ] || die "$OUT/tokens exists already"
umask 077
mkdir -p "$OUT/tokens"
cat >"$OUT/softhsm2.conf" <<CONF
# SoftHSM2 configuration made by tests/sim/softhsm/make-token.sh
directories.tokendir = $OUT/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$OUT/softhsm2.conf"

log="$OUT/make-token.log"
run() { "$@" >>"$log" 2>&1 || { cat "$log" >&2; die "failed: $1 ${2:-}"; }; }

run softhsm2-util --init-token --free --label "$LABEL" --pin "$PIN" --so-pin "$SO_PIN"

# softhsm2-util --import wants PKCS#8 PEM, which make-pki.sh writes (genpkey).
run softhsm2-util --import "$PROFILE/auth.key.pem" --token "$LABEL" --pin "$PIN" \
    --id 02 --label CPS_PRIV_AUT
run softhsm2-util --import "$PROFILE/sign.key.pem" --token "$LABEL" --pin "$PIN" \
    --id 01 --label CPS_PRIV_SIG

p11() { run pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$PIN" "$@"; }
p11 --write-object "$PROFILE/auth.crt.der" --type cert --id 02 --label "Certificat d'authentification CPS"
p11 --write-object "$PROFILE/sign.crt.der" --type cert --id 01 --label "Certificat de signature CPS"
p11 --write-object "$PROFILE/ca.crt.der" --type cert --id 03 --label "Certificat AC CPS"

# The token's serial (random, chosen by SoftHSM2) and slot, for tests.
slots=$(softhsm2-util --show-slots 2>>"$log")
serial=$(printf '%s\n' "$slots" | sed -n 's/^[[:space:]]*Serial number:[[:space:]]*//p' | head -n 1)
slot=$(printf '%s\n' "$slots" | sed -n 's/^Slot \([0-9]*\)$/\1/p' | head -n 1)
[ -n "$serial" ] || die "could not read the token serial"
{
    echo "# SoftHSM2 test token made by make-token.sh from $PROFILE"
    echo "label = $LABEL"
    echo "serial = $serial"
    echo "slot = $slot"
    echo "pin = $PIN"
    echo "so_pin = $SO_PIN"
} >"$OUT/token.info"
rm -f "$log"
printf '%s\n' "$SOFTHSM2_CONF"
