#!/usr/bin/env bash
# ctl_ca.sh - ringmeshctl ca init / ca issue, checked by openssl (issue 4).
#
# Checks: --help; bad usage exits 2 naming the flag; a root and an SVID as openssl reads them
# (CA:TRUE critical, keyCertSign + cRLSign, one URI SAN spiffe://cluster.local/ns/N/sa/S,
# digitalSignature critical, serverAuth + clientAuth, CA:FALSE, P-256, ecdsa-with-SHA256,
# dates to the second, key modes 0600); `openssl verify -x509_strict` passes against its root
# and fails against another; openssl s_server/s_client complete a TLS 1.3 handshake with
# client certificates on the issued files, and refuse a client from another root or with no
# certificate; a root is never silently replaced; trust domain and lifetime errors exit 1
# naming what was wrong; roots made by openssl (PKCS#8 keys, with and without a SPIFFE SAN)
# sign SVIDs too.
source "$(dirname "$0")/lib.sh"
CTL=$RINGMESH_BIN/ringmeshctl
T=$IT_TMP
if ! command -v openssl >/dev/null; then
    skip "openssl is not installed"
    tap_done; exit
fi

# run NAME cmd...: runs it, keeps stdout+stderr in $out and the status in $rc
run() { out=$("$@" 2>&1); rc=$?; }
# expect_usage NAME PATTERN cmd...: exit 2 and the message matches
expect_usage() {
    local name=$1 pat=$2; shift 2
    run "$@"
    if [ "$rc" = 2 ] && grep -qE -- "$pat" <<<"$out"; then ok "usage: $name"; else
        not_ok "usage: $name" "exit $rc, want 2 and /$pat/" "$(head -n 3 <<<"$out")"; fi
}
# expect_fail NAME PATTERN cmd...: exit 1 and the message matches
expect_fail() {
    local name=$1 pat=$2; shift 2
    run "$@"
    if [ "$rc" = 1 ] && grep -qE -- "$pat" <<<"$out"; then ok "$name"; else
        not_ok "$name" "exit $rc, want 1 and /$pat/" "$(head -n 3 <<<"$out")"; fi
}
epoch() { date -u -d "$1" +%s; }
not_before() { epoch "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)"; }
not_after() { epoch "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)"; }
mode() { command stat -c %a "$1"; } # lib.sh has a stat() of its own
# the text of one extension block of `openssl x509 -text`: its header line and values
ext() { openssl x509 -in "$1" -noout -text | awk -v h="$2" '
    index($0, h) { on = 1; print; next } on && /^                / { print; next } { on = 0 }'; }
# quietly: openssl verify prints "file: OK"
quietly() { "$@" >/dev/null 2>&1; }

# ---- help and usage
run "$CTL" --help
check "--help exits 0 and lists ca init and ca issue" \
    eval '[ "$rc" = 0 ] && grep -q "ca init" <<<"$out" && grep -q "ca issue" <<<"$out"' 
run "$CTL" ca init --help
check "ca init --help lists its flags" eval '[ "$rc" = 0 ] && grep -q -- --trust-domain <<<"$out" && grep -q -- --days <<<"$out"' 
run "$CTL" ca issue --help
check "ca issue --help lists its flags" eval '[ "$rc" = 0 ] && grep -q -- --hours <<<"$out" && grep -q -- --out <<<"$out"' 
expect_usage "no command" "usage: ringmeshctl" "$CTL"
expect_usage "unknown command" 'unknown command "frob"' "$CTL" frob
expect_usage "ca without a subcommand" "init or issue" "$CTL" ca
expect_usage "unknown ca subcommand" 'unknown command "ca sign"' "$CTL" ca sign
expect_usage "init without --dir" "--dir is required" "$CTL" ca init
expect_usage "--dir without a value" "--dir needs a value" "$CTL" ca init --dir
expect_usage "unknown flag" "unknown flag --bogus" "$CTL" ca init --dir "$T/x" --bogus
expect_usage "--days 0" '--days: want an integer 1..36500, got "0"' "$CTL" ca init --dir "$T/x" --days 0
expect_usage "--days abc" '--days: .*got "abc"' "$CTL" ca init --dir "$T/x" --days abc
expect_usage "--days 36501" '--days: .*got "36501"' "$CTL" ca init --dir "$T/x" --days 36501
expect_usage "init --trust-domain with uppercase" '--trust-domain "Cluster.Local"' \
    "$CTL" ca init --dir "$T/x" --trust-domain Cluster.Local
expect_usage "a stray argument" 'unexpected argument "extra"' "$CTL" ca init --dir "$T/x" extra
check "usage errors wrote nothing" test ! -e "$T/x"
expect_usage "issue without --ns" "--ns is required" "$CTL" ca issue --dir "$T/x" --sa s
expect_usage "issue without --sa" "--sa is required" "$CTL" ca issue --dir "$T/x" --ns n
expect_usage "issue without --dir" "--dir is required" "$CTL" ca issue --ns n --sa s
expect_usage "--ns not a DNS label" '--ns "Shop"' "$CTL" ca issue --dir "$T/x" --ns Shop --sa s
expect_usage "--ns with a dot" '--ns "a.b"' "$CTL" ca issue --dir "$T/x" --ns a.b --sa s
expect_usage "--sa with an underscore" '--sa "bad_sa"' "$CTL" ca issue --dir "$T/x" --ns n --sa bad_sa
expect_usage "--hours 0" '--hours: want an integer 1..8784, got "0"' "$CTL" ca issue --dir "$T/x" --ns n --sa s --hours 0
expect_usage "--hours -1" '--hours: .*got "-1"' "$CTL" ca issue --dir "$T/x" --ns n --sa s --hours -1
expect_usage "issue --trust-domain bad" '--trust-domain "a_b"' "$CTL" ca issue --dir "$T/x" --ns n --sa s --trust-domain a_b

# ---- ca init
D=$T/ca
t0=$(date +%s)
run "$CTL" ca init --dir "$D"
t1=$(date +%s)
check "ca init: exit 0 ($out)" [ "$rc" = 0 ]
check "ca init: says what it wrote" grep -q "wrote $D/root-cert.pem and $D/root-key.pem: root CA of trust domain cluster.local" <<<"$out"
check "ca init: root-key.pem is 0600" [ "$(mode "$D/root-key.pem")" = 600 ]
check "ca init: the directory it made is 0700" [ "$(mode "$D")" = 700 ]
check "ca init: no temporary files left" [ "$(ls -A "$D" | sort | tr '\n' ' ')" = "root-cert.pem root-key.pem " ]
RT=$(openssl x509 -in "$D/root-cert.pem" -noout -text 2>&1)
check "root: openssl reads it" [ -n "$(openssl x509 -in "$D/root-cert.pem" -noout -subject 2>/dev/null)" ]
check "root: self-signed, subject O=ringmesh, CN=cluster.local" \
    eval "openssl x509 -in '$D/root-cert.pem' -noout -subject -issuer | grep -c 'O = ringmesh, CN = cluster.local' | grep -qx 2"
check "root: basicConstraints critical CA:TRUE" \
    eval "ext '$D/root-cert.pem' 'Basic Constraints' | tr -d '\n ' | grep -qx 'X509v3BasicConstraints:criticalCA:TRUE'"
check "root: keyUsage critical keyCertSign, cRLSign" \
    eval "ext '$D/root-cert.pem' 'X509v3 Key Usage' | tr -d '\n ' | grep -qx 'X509v3KeyUsage:criticalCertificateSign,CRLSign'"
check "root: URI SAN spiffe://cluster.local" \
    eval "ext '$D/root-cert.pem' 'Subject Alternative Name' | tr -d '\n ' | grep -qx 'X509v3SubjectAlternativeName:URI:spiffe://cluster.local'"
check "root: P-256 key" grep -q "NIST CURVE: P-256" <<<"$RT"
check "root: ecdsa-with-SHA256 signature" eval "grep -c 'Signature Algorithm: ecdsa-with-SHA256' <<<\"\$RT\" | grep -qx 2"
check "root: subject and authority key identifiers" eval "grep -q 'Subject Key Identifier' <<<\"\$RT\" && grep -q 'Authority Key Identifier' <<<\"\$RT\""
nb=$(not_before "$D/root-cert.pem") na=$(not_after "$D/root-cert.pem")
check "root: notBefore is 5 minutes before the command ($nb vs $t0..$t1)" [ "$nb" -ge $((t0 - 300)) -a "$nb" -le $((t1 - 300)) ]
check "root: notAfter is 3650 days after the command" [ $((na - nb)) = $((3650 * 86400 + 300)) ]
check "root: a self-signed CA openssl verifies by itself" quietly openssl verify -x509_strict -CAfile "$D/root-cert.pem" "$D/root-cert.pem"
check "root: the key is P-256 and the certificate's" \
    eval "[ \"\$(openssl pkey -in '$D/root-key.pem' -pubout)\" = \"\$(openssl x509 -in '$D/root-cert.pem' -noout -pubkey)\" ]"

# never replaced by accident
sum=$(sha256sum "$D/root-cert.pem" "$D/root-key.pem")
expect_fail "ca init again: refused, naming the existing key" "$D/root-key.pem exists.*--force" "$CTL" ca init --dir "$D"
check "ca init again: the root is untouched" [ "$(sha256sum "$D/root-cert.pem" "$D/root-key.pem")" = "$sum" ]
D2=$T/ca2
"$CTL" ca init --dir "$D2" >/dev/null
cp "$D2/root-cert.pem" "$T/ca2-before.pem"
run "$CTL" ca init --dir "$D2" --force --days 30
check "ca init --force: replaces the root" eval "[ $rc = 0 ] && ! cmp -s '$T/ca2-before.pem' '$D2/root-cert.pem'"
check "ca init --days 30: notAfter 30 days on" [ $(($(not_after "$D2/root-cert.pem") - $(not_before "$D2/root-cert.pem"))) = $((30 * 86400 + 300)) ]

# ---- ca issue
W=$T/cart
t0=$(date +%s)
run "$CTL" ca issue --dir "$D" --ns shop --sa cart --out "$W"
t1=$(date +%s)
check "ca issue: exit 0 ($out)" [ "$rc" = 0 ]
check "ca issue: says the ID and the files" grep -q "wrote $W/cert-chain.pem, $W/key.pem and $W/root-cert.pem: spiffe://cluster.local/ns/shop/sa/cart, valid until" <<<"$out"
check "ca issue: key.pem is 0600" [ "$(mode "$W/key.pem")" = 600 ]
check "ca issue: cert-chain.pem is 0644" [ "$(mode "$W/cert-chain.pem")" = 644 ]
check "ca issue: root-cert.pem is the root's" cmp -s "$W/root-cert.pem" "$D/root-cert.pem"
check "ca issue: cert-chain.pem holds one certificate (the leaf; no intermediates)" \
    [ "$(grep -c 'BEGIN CERTIFICATE' "$W/cert-chain.pem")" = 1 ]
check "ca issue: key.pem is an EC key" grep -q "BEGIN EC PRIVATE KEY" "$W/key.pem"
LT=$(openssl x509 -in "$W/cert-chain.pem" -noout -text 2>&1)
echo "$LT" | sed -n '/Validity/,/Not After/p;/X509v3 extensions/,/Signature Algorithm/p' | sed 's/^/# /'
check "leaf: exactly one SAN, the URI spiffe://cluster.local/ns/shop/sa/cart" \
    eval "ext '$W/cert-chain.pem' 'Subject Alternative Name' | tr -d '\n ' | grep -qx 'X509v3SubjectAlternativeName:URI:spiffe://cluster.local/ns/shop/sa/cart'"
check "leaf: keyUsage critical digitalSignature only" \
    eval "ext '$W/cert-chain.pem' 'X509v3 Key Usage' | tr -d '\n ' | grep -qx 'X509v3KeyUsage:criticalDigitalSignature'"
check "leaf: extKeyUsage serverAuth + clientAuth" \
    eval "ext '$W/cert-chain.pem' 'Extended Key Usage' | tr -d '\n' | grep -qx ' *X509v3 Extended Key Usage: *TLS Web Server Authentication, TLS Web Client Authentication'"
check "leaf: basicConstraints CA:FALSE" \
    eval "ext '$W/cert-chain.pem' 'Basic Constraints' | tr -d '\n ' | grep -qE 'X509v3BasicConstraints:(critical)?CA:FALSE'"
check "leaf: issued by the root" eval "[ \"\$(openssl x509 -in '$W/cert-chain.pem' -noout -issuer | cut -d= -f2-)\" = \"\$(openssl x509 -in '$D/root-cert.pem' -noout -subject | cut -d= -f2-)\" ]"
check "leaf: P-256, ecdsa-with-SHA256" eval "grep -q 'NIST CURVE: P-256' <<<\"\$LT\" && grep -q 'Signature Algorithm: ecdsa-with-SHA256' <<<\"\$LT\""
serial=$(openssl x509 -in "$W/cert-chain.pem" -noout -serial | cut -d= -f2)
check "leaf: a 16-byte serial ($serial)" [ "${#serial}" = 32 ]
nb=$(not_before "$W/cert-chain.pem") na=$(not_after "$W/cert-chain.pem")
check "leaf: notBefore is 5 minutes before the command" [ "$nb" -ge $((t0 - 300)) -a "$nb" -le $((t1 - 300)) ]
check "leaf: valid 24 hours from the command" [ $((na - nb)) = $((24 * 3600 + 300)) ]
check "leaf: key.pem is the certificate's key" \
    eval "[ \"\$(openssl pkey -in '$W/key.pem' -pubout)\" = \"\$(openssl x509 -in '$W/cert-chain.pem' -noout -pubkey)\" ]"
check "openssl verify -x509_strict: the SVID against root-cert.pem" \
    quietly openssl verify -x509_strict -CAfile "$W/root-cert.pem" "$W/cert-chain.pem"
check "openssl verify: good as a TLS client" quietly openssl verify -x509_strict -purpose sslclient -CAfile "$W/root-cert.pem" "$W/cert-chain.pem"
check "openssl verify: good as a TLS server" quietly openssl verify -x509_strict -purpose sslserver -CAfile "$W/root-cert.pem" "$W/cert-chain.pem"
run openssl verify -x509_strict -CAfile "$D2/root-cert.pem" "$W/cert-chain.pem"
check "openssl verify: another root does not verify it" [ "$rc" != 0 ]

run "$CTL" ca issue --dir "$D" --ns shop --sa cart --out "$W"
check "ca issue again: rotates the SVID (new serial and key)" eval "[ $rc = 0 ] && [ \"\$(openssl x509 -in '$W/cert-chain.pem' -noout -serial | cut -d= -f2)\" != '$serial' ]"
check "ca issue again: no temporary files left" [ "$(ls -A "$W" | sort | tr '\n' ' ')" = "cert-chain.pem key.pem root-cert.pem " ]
run "$CTL" ca issue --dir "$D" --ns payments --sa api.v2 --hours 1 --out "$T/pay"
check "ca issue --hours 1 --sa api.v2: exit 0" [ "$rc" = 0 ]
check "ca issue --hours 1: valid 1 hour" [ $(($(not_after "$T/pay/cert-chain.pem") - $(not_before "$T/pay/cert-chain.pem"))) = $((3600 + 300)) ]
check "ca issue --sa api.v2: the URI carries it" \
    eval "ext '$T/pay/cert-chain.pem' 'Subject Alternative Name' | grep -q 'URI:spiffe://cluster.local/ns/payments/sa/api.v2$'"
(cd "$T" && mkdir -p here && cd here && "$CTL" ca issue --dir "$D" --ns shop --sa here >/dev/null 2>&1)
check "ca issue without --out: writes into the current directory" \
    eval "cd '$T/here' && [ -f cert-chain.pem ] && [ -f key.pem ] && [ -f root-cert.pem ]"

# ---- failures: exit 1 with the reason
expect_fail "issue: a missing root names the file" "$T/nope/root-cert.pem: No such file or directory" \
    "$CTL" ca issue --dir "$T/nope" --ns shop --sa cart --out "$T/o1"
expect_fail "issue: another trust domain than the root's" 'trust domain "example.org" is not the root.s \("cluster.local"\)' \
    "$CTL" ca issue --dir "$D" --ns shop --sa cart --trust-domain example.org --out "$T/o2"
D3=$T/short
"$CTL" ca init --dir "$D3" --days 1 >/dev/null
expect_fail "issue: an SVID may not outlive its root" "lifetime of 25 hours .*outlives the root" \
    "$CTL" ca issue --dir "$D3" --ns shop --sa cart --hours 25 --out "$T/o3"
check "failed issues wrote nothing" eval "[ ! -e '$T/o1' ] && [ ! -e '$T/o2' ] && [ ! -e '$T/o3' ]"
mkdir -p "$T/mixed" && cp "$D/root-cert.pem" "$T/mixed/" && cp "$D2/root-key.pem" "$T/mixed/"
expect_fail "issue: a key that is not the root's" "$T/mixed/root-key.pem: not the key of root-cert.pem" \
    "$CTL" ca issue --dir "$T/mixed" --ns shop --sa cart --out "$T/o4"
mkdir -p "$T/leafroot" && cp "$W/cert-chain.pem" "$T/leafroot/root-cert.pem" && cp "$W/key.pem" "$T/leafroot/root-key.pem"
expect_fail "issue: a leaf is not a root" "root-cert.pem: not a CA certificate" \
    "$CTL" ca issue --dir "$T/leafroot" --ns shop --sa cart --out "$T/o5"

# ---- a custom trust domain follows the root
"$CTL" ca init --dir "$T/org" --trust-domain example.org >/dev/null
run "$CTL" ca issue --dir "$T/org" --ns shop --sa cart --out "$T/orgw"
check "trust domain example.org: the SVID takes the root's" \
    eval "[ $rc = 0 ] && ext '$T/orgw/cert-chain.pem' 'Subject Alternative Name' | grep -q 'URI:spiffe://example.org/ns/shop/sa/cart$'"

# ---- roots made by openssl (PKCS#8 keys) sign too
O=$T/ossl
mkdir -p "$O"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$O/root-key.pem" 2>/dev/null
openssl req -x509 -new -key "$O/root-key.pem" -subj "/O=acme/CN=acme root" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectAltName=URI:spiffe://acme.test" -out "$O/root-cert.pem" 2>/dev/null
check "openssl root: a PKCS#8 key" grep -q "BEGIN PRIVATE KEY" "$O/root-key.pem"
run "$CTL" ca issue --dir "$O" --ns shop --sa cart --out "$T/osslw"
check "openssl root: ringmeshctl issues from it ($out)" [ "$rc" = 0 ]
check "openssl root: the trust domain comes from its URI SAN" \
    eval "ext '$T/osslw/cert-chain.pem' 'Subject Alternative Name' | grep -q 'URI:spiffe://acme.test/ns/shop/sa/cart$'"
check "openssl root: openssl verifies the SVID" quietly openssl verify -x509_strict -CAfile "$T/osslw/root-cert.pem" "$T/osslw/cert-chain.pem"
O2=$T/ossl2
mkdir -p "$O2"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$O2/root-key.pem" 2>/dev/null
openssl req -x509 -new -key "$O2/root-key.pem" -subj "/CN=plain root" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" -out "$O2/root-cert.pem" 2>/dev/null
run "$CTL" ca issue --dir "$O2" --ns shop --sa cart --out "$T/ossl2w"
check "openssl root without a SAN: the trust domain defaults to cluster.local" \
    eval "[ $rc = 0 ] && ext '$T/ossl2w/cert-chain.pem' 'Subject Alternative Name' | grep -q 'URI:spiffe://cluster.local/ns/shop/sa/cart$'"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$T/p384.pem" 2>/dev/null
mkdir -p "$T/p384" && cp "$O2/root-cert.pem" "$T/p384/" && cp "$T/p384.pem" "$T/p384/root-key.pem"
expect_fail "issue: a P-384 root key is refused" "root-key.pem: not a P-256 key" \
    "$CTL" ca issue --dir "$T/p384" --ns shop --sa cart --out "$T/o6"

# ---- mTLS with openssl on the issued files
integ_ports
"$CTL" ca issue --dir "$D" --ns shop --sa payments --out "$T/srv" >/dev/null
"$CTL" ca issue --dir "$D2" --ns shop --sa cart --out "$T/rogue" >/dev/null # same name, other root
# s_server -www answers GET / with a page that prints the client's certificate
serve() { # NAME PORT
    bg "$1" openssl s_server -accept "$2" -tls1_3 -cert "$T/srv/cert-chain.pem" -key "$T/srv/key.pem" \
        -CAfile "$T/srv/root-cert.pem" -Verify 1 -verify_return_error -naccept 1 -www
    wait_until 5 bash -c "ss -ltnH 'sport = :$2' | grep -q ."
}
client() { # PORT DIR|none
    local id=()
    [ "$2" != none ] && id=(-cert "$2/cert-chain.pem" -key "$2/key.pem")
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_3 \
        "${id[@]}" -CAfile "$T/srv/root-cert.pem" -verify_return_error -ign_eof 2>&1
}
serve s1 "$P0"
out=$(client "$P0" "$W")
check "mTLS: TLS 1.3 handshake completes" grep -q "New, TLSv1.3, Cipher is" <<<"$out"
check "mTLS: the client verified the server's SVID" grep -q "Verify return code: 0 (ok)" <<<"$out"
check "mTLS: the server got and accepted the client's SVID (its page shows the client's URI)" \
    grep -q "URI:spiffe://cluster.local/ns/shop/sa/cart" <<<"$out"
check "mTLS: the server answered" grep -q "HTTP/1.0 200 ok" <<<"$out"
wait_exit "$BG_PID" 5
serve s2 "$P1"
out=$(client "$P1" "$T/rogue")
check "mTLS: a client SVID from another root is refused" \
    eval "! grep -q 'HTTP/1.0 200 ok' <<<\"\$out\" && grep -qiE 'alert (unknown ca|certificate unknown|bad certificate|decrypt error)|verify error' <<<\"\$out\""
wait_exit "$BG_PID" 5
serve s3 "$P2"
out=$(client "$P2" none)
check "mTLS: a client without a certificate is refused" \
    eval "! grep -q 'HTTP/1.0 200 ok' <<<\"\$out\" && grep -qiE 'alert|error' <<<\"\$out\""
wait_exit "$BG_PID" 5
# the server side too: s_client checks the server's SVID against the root
bg s4 openssl s_server -accept "$P3" -tls1_3 -cert "$T/rogue/cert-chain.pem" -key "$T/rogue/key.pem" -naccept 1 -www
wait_until 5 bash -c "ss -ltnH 'sport = :$P3' | grep -q ."
out=$(client "$P3" "$W")
check "mTLS: a server SVID from another root is refused by the client" \
    eval "! grep -q 'Verify return code: 0 (ok)' <<<\"\$out\" && ! grep -q 'HTTP/1.0 200 ok' <<<\"\$out\""

tap_done
