#!/usr/bin/env bash
# make-pki.sh OUTDIR — the Cachet test PKI and the virtual card profiles.
#
# Mirrors IGC-Santé (shared/spec/domain.md): three TEST roots
# "TEST AC RACINE IGC-SANTE ELEMENTAIRE|STANDARD|FORT", each with a
# "TEST AC IGC-SANTE <gamme> PERSONNES" intermediate; card certificates are
# issued by the PERSONNES intermediates (ELEMENTAIRE for most cards, STANDARD
# for one, so that clients are seen to trust all three gammes).
#
# Writes OUTDIR/roots.pem, OUTDIR/intermediates.pem, OUTDIR/ca/<gamme>/...,
# and one directory per card profile OUTDIR/profiles/<name>/ (the keys of
# profile.conf are documented in docs/simulation.md §5).
#
# Idempotent: does nothing when OUTDIR/stamp exists. Builds into a temporary
# directory beside OUTDIR and renames it into place, so an interrupted run
# never leaves a half-made PKI behind a stamp.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
if [ -f "$OUT/stamp" ]; then
    exit 0
fi
command -v openssl >/dev/null || { echo "make-pki: openssl not found" >&2; exit 1; }

parent=$(dirname -- "$OUT")
mkdir -p -- "$parent"
WORK=$(mktemp -d "$parent/.pki-work.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
umask 077

export LC_ALL=C.UTF-8
# Keep the host's openssl.cnf out of the picture.
export OPENSSL_CONF=/dev/null

ROOT_DAYS=7300     # 20 years
INTER_DAYS=3650    # 10 years
CARD_DAYS=1095     # 3 years: the life of a card (domain.md)

serial() { printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./4/')"; }

genkey() { openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null \
           || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

cat >"$WORK/req.cnf" <<'EOF'
[req]
distinguished_name = dn
string_mask = utf8only
utf8 = yes
prompt = no
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

cat >"$WORK/ext.cnf" <<'EOF'
[inter]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[auth]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, 1.3.6.1.4.1.311.20.2.2
subjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:${ENV::CACHET_UPN}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
1.2.250.1.71.1.2.7 = ASN1:UTF8String:${ENV::CACHET_PROFESSION_CODE}

[sign]
basicConstraints = critical, CA:FALSE
keyUsage = critical, nonRepudiation
extendedKeyUsage = emailProtection
subjectAltName = email:${ENV::CACHET_EMAIL}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
1.2.250.1.71.1.2.7 = ASN1:UTF8String:${ENV::CACHET_PROFESSION_CODE}
EOF

# ext.cnf expands these when it is loaded, whichever section is used.
export CACHET_UPN=unused CACHET_EMAIL=unused CACHET_PROFESSION_CODE=00

IGC="/C=FR/O=ASIP-SANTE/OU=0002 187512751/OU=IGC-SANTE TEST"

mkdir -p "$WORK/ca"
: >"$WORK/roots.pem"
: >"$WORK/intermediates.pem"
for gamme in ELEMENTAIRE STANDARD FORT; do
    d="$WORK/ca/$gamme"
    mkdir -p "$d"
    genkey "$d/root.key.pem"
    openssl req -config "$WORK/req.cnf" -new -x509 -utf8 -sha256 \
        -key "$d/root.key.pem" -subj "$IGC/CN=TEST AC RACINE IGC-SANTE $gamme" \
        -days $ROOT_DAYS -set_serial "$(serial)" -extensions root \
        -out "$d/root.crt.pem"

    genkey "$d/inter.key.pem"
    openssl req -config "$WORK/req.cnf" -new -utf8 -key "$d/inter.key.pem" \
        -subj "$IGC/CN=TEST AC IGC-SANTE $gamme PERSONNES" -out "$d/inter.csr"
    openssl x509 -req -in "$d/inter.csr" -CA "$d/root.crt.pem" -CAkey "$d/root.key.pem" \
        -sha256 -days $INTER_DAYS -set_serial "$(serial)" \
        -extfile "$WORK/ext.cnf" -extensions inter -out "$d/inter.crt.pem" 2>"$WORK/x509.log" \
        || { cat "$WORK/x509.log" >&2; exit 1; }
    rm -f "$d/inter.csr"
    cat "$d/root.crt.pem" >>"$WORK/roots.pem"
    cat "$d/inter.crt.pem" >>"$WORK/intermediates.pem"
done

# make_profile NAME GAMME SUBJECT CN EMAIL PROFESSION_CODE -- key=value...
# SUBJECT is an openssl -subj string (ASN.1 order, '+' joins a multi-valued RDN).
make_profile() {
    local name=$1 gamme=$2 subj=$3 cn=$4 email=$5 pcode=$6
    shift 7
    local p="$WORK/profiles/$name" ca="$WORK/ca/$gamme"
    mkdir -p "$p"
    export CACHET_UPN="$cn@carte-cps.fr" CACHET_EMAIL="$email" CACHET_PROFESSION_CODE="$pcode"
    local kind
    for kind in auth sign; do
        genkey "$p/$kind.key.pem"
        openssl req -config "$WORK/req.cnf" -new -utf8 -key "$p/$kind.key.pem" \
            -subj "$subj" -out "$p/$kind.csr"
        openssl x509 -req -in "$p/$kind.csr" -CA "$ca/inter.crt.pem" -CAkey "$ca/inter.key.pem" \
            -sha256 -days $CARD_DAYS -set_serial "$(serial)" \
            -extfile "$WORK/ext.cnf" -extensions "$kind" -out "$p/$kind.crt.pem" 2>"$WORK/x509.log" \
            || { cat "$WORK/x509.log" >&2; exit 1; }
        openssl x509 -in "$p/$kind.crt.pem" -outform DER -out "$p/$kind.crt.der"
        rm -f "$p/$kind.csr"
    done
    cp "$ca/inter.crt.pem" "$p/ca.crt.pem"
    openssl x509 -in "$p/ca.crt.pem" -outform DER -out "$p/ca.crt.der"
    cat "$ca/inter.crt.pem" "$ca/root.crt.pem" >"$p/chain.pem"
    {
        echo "# Cachet virtual card profile (docs/simulation.md §5). Generated by make-pki.sh."
        echo "name = $name"
        local kv
        for kv in "$@"; do
            echo "${kv%%=*} = ${kv#*=}"
        done
        echo "email = $email"
        echo "upn = $cn@carte-cps.fr"
        echo "issuer = TEST AC IGC-SANTE $gamme PERSONNES"
        echo "pin_tries_max = 3"
        echo "puk_tries_max = 10"
        echo "auth_key = auth.key.pem"
        echo "auth_cert = auth.crt.der"
        echo "sign_key = sign.key.pem"
        echo "sign_cert = sign.crt.der"
        echo "ca_cert = ca.crt.der"
        echo "timing_compute_rsa_ms = 150"
        echo "timing_compute_other_ms = 2"
    } >"$p/profile.conf"
}

# ATRs (shared/spec/cpx-card.md part A item 1).
ATR_T0="3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"
# T=1: TS 3B, T0 9B (TA1, TD1, K=11), TA1 18 (Fi 372 / Di 12), TD1 81 (TD2, T=1),
# TD2 01 (T=1, no TA3 -> IFSC 32), 11 historical bytes, TCK 00; 00 03 43 make
# the XOR of T0..TCK zero (checked below).
ATR_T1="3B 9B 18 81 01 00 12 25 00 64 80 00 03 43 00 90 00"

x=0
for b in $ATR_T1; do x=$((x ^ 0x$b)); done
x=$((x ^ 0x3B))   # TS is not covered by TCK (ISO/IEC 7816-3 §8.2.5)
if [ $x -ne 0 ]; then
    echo "make-pki: T=1 ATR check byte wrong" >&2
    exit 1
fi

mkdir -p "$WORK/profiles"

make_profile cps-rpps ELEMENTAIRE \
    "/C=FR/title=Médecin/SN=DUPONT+CN=899700123456+GN=JEAN" \
    899700123456 jean.dupont@medecin.mssante.fr 10 -- \
    "label=CPS3 TEST" "holder=Dr Jean DUPONT" "surname=DUPONT" "given_name=JEAN" \
    "title=Médecin" "idnat=899700123456" "card_type=CPS" \
    "atr=$ATR_T0" "pin=1234" "puk=12345678" "serial=80250000019900000001"

make_profile cps-adeli STANDARD \
    "/C=FR/title=Masseur-Kinésithérapeute/SN=MARTIN+CN=0751234567+GN=CLAIRE" \
    0751234567 claire.martin@masseur-kinesitherapeute.mssante.fr 70 -- \
    "label=CPS3 TEST" "holder=Claire MARTIN" "surname=MARTIN" "given_name=CLAIRE" \
    "title=Masseur-Kinésithérapeute" "idnat=0751234567" "card_type=CPS" \
    "atr=$ATR_T0" "pin=4321" "puk=87654321" "serial=80250000019900000002"

make_profile cpe-staff ELEMENTAIRE \
    "/C=FR/ST=Rhône (69)/O=CABINET MEDICAL DES TESTS/OU=30B0057881/title=Secrétaire médicale/SN=BERNARD+CN=30B0057881\/CPET0001+GN=SOPHIE" \
    30B0057881/CPET0001 secretariat.cabinet-des-tests@mssante.fr 00 -- \
    "label=CPE3 TEST" "holder=Sophie BERNARD" "surname=BERNARD" "given_name=SOPHIE" \
    "title=Secrétaire médicale" "idnat=30B0057881/CPET0001" "card_type=CPE" \
    "organization=CABINET MEDICAL DES TESTS" "structure_id=30B0057881" \
    "atr=$ATR_T0" "pin=0000" "puk=11112222" "serial=80250000019900000003"

make_profile cps-t1 ELEMENTAIRE \
    "/C=FR/title=Pharmacien/SN=PETIT+CN=899700654321+GN=LUC" \
    899700654321 luc.petit@pharmacien.mssante.fr 21 -- \
    "label=CPS3 TEST" "holder=Luc PETIT" "surname=PETIT" "given_name=LUC" \
    "title=Pharmacien" "idnat=899700654321" "card_type=CPS" \
    "atr=$ATR_T1" "pin=1234" "puk=12345678" "serial=80250000019900000004"

# Sanity: every card certificate chains to a root.
for p in "$WORK"/profiles/*/; do
    for kind in auth sign; do
        openssl verify -CAfile "$WORK/roots.pem" -untrusted "$p/ca.crt.pem" \
            "$p/$kind.crt.pem" >/dev/null
    done
done

rm -f "$WORK/x509.log" "$WORK/req.cnf" "$WORK/ext.cnf"
chmod -R u+rwX,go+rX,go-w "$WORK"
chmod 0644 "$WORK"/profiles/*/*.key.pem "$WORK"/ca/*/*.key.pem
date -u +%Y-%m-%dT%H:%M:%SZ >"$WORK/stamp"
if [ -e "$OUT" ]; then
    # An unstamped leftover (interrupted run): replace it.
    rm -rf -- "$OUT"
fi
mv -- "$WORK" "$OUT"
trap - EXIT
