#!/usr/bin/env bash
# `cachet whoami` prints the virtual practitioner of the profile (RPPS, ADELI or
# staff card), in French by default and in English with LANG=en; a card seen
# before is bound from the cache (no certificate read) after re-insertion.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon_lib.sh"

surname=$(profile_value surname)
given=$(profile_value given_name)
idnat=$(profile_value idnat)
title=$(profile_value title)
ctype=$(profile_value card_type)

step "cachet whoami ($CACHET_CARD_PROFILE)"
out=$(cachet whoami) || fail "whoami failed: $out"
echo "$out" | sed 's/^/   /'
expect_match "$out" "^$given $surname\$" "holder name"
expect_match "$out" "Profession +: $title" "profession"
expect_match "$out" "Carte +: $ctype, " "card type"
expect_match "$out" "reconnus \(IGC-Santé\)" "chain status"
expect_match "$out" "authentification 0x82 CPS_PRIV_AUT, signature 0x81 CPS_PRIV_SIG" "key roles"
case "$idnat" in
  8*) expect_match "$out" "^RPPS +: ${idnat#8} \(IdNat $idnat\)" "RPPS number" ;;
  0*) expect_match "$out" "^ADELI +: ${idnat#0} \(IdNat $idnat\)" "ADELI number" ;;
  *)  expect_match "$out" "IdNat +: $idnat" "staff card identifier"
      expect_match "$out" "Structure +: $(profile_value organization) \($(profile_value structure_id)\)" \
        "structure" ;;
esac

step "English with LANG=en_US.UTF-8; --json gives the identity object"
out=$(LANG=en_US.UTF-8 LC_ALL= LC_MESSAGES= cachet whoami)
expect_match "$out" "Certificates  : trusted" "English output"
json=$(cachet --json whoami)
[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["surname"])' <<<"$json")" = "$surname" ] ||
  fail "--json surname"
expect_match "$json" "\"idnat\": \"$idnat\"" "--json idnat"

step "re-insertion: identity from the cache, no certificate read"
cachet-sim-ctl card remove >/dev/null
poll 3000 sh -c '! cachet whoami' || fail "whoami still answers without a card"
rc=0; out=$(cachet whoami 2>&1) || rc=$?
[ $rc = 4 ] || fail "whoami without a card: exit $rc (want 4)"
expect_match "$out" "Insérez votre carte CPS" "no-card message"
cachet-sim-ctl card insert "$CACHET_CARD_PROFILE" >/dev/null
poll 5000 cachet whoami || fail "whoami after re-insertion"
expect_match "$(cat "$CACHETD_LOG")" "from the cache" "bound from the cache"
echo "OK"
