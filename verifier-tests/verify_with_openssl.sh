#!/usr/bin/env bash
# Verifies a robustcert certificate with openssl alone (no robustcert code): rebuilds the DSSE v1
# pre-authentication encoding with python3's standard library, checks the keyid, and verifies the
# signature with `openssl dgst -sha256 -verify` (ECDSA P-256) or `openssl pkeyutl -verify -rawin`
# (Ed25519).
#
# usage: verifier-tests/verify_with_openssl.sh CERT.intoto.jsonl|CERT.sigstore.json PUB.pem
# exit 0 and "Verified OK" when the signature verifies; non-zero otherwise.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 CERT.intoto.jsonl PUB.pem" >&2
    exit 2
fi
cert=$1
pub=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# keyid = sha256 of the DER SubjectPublicKeyInfo.
openssl pkey -pubin -in "$pub" -outform DER -out "$tmp/pub.der"
keyid=$(openssl dgst -sha256 -r "$tmp/pub.der" | cut -d' ' -f1)

python3 - "$cert" "$tmp" "$keyid" <<'PY'
import base64, json, sys
cert, tmp, keyid = sys.argv[1], sys.argv[2], sys.argv[3]
doc = json.load(open(cert, "rb"))
env = doc.get("dsseEnvelope", doc)  # a Sigstore bundle carries the envelope
ptype = env["payloadType"]
if ptype != "application/vnd.in-toto+json":
    sys.exit(f"payloadType is {ptype!r}, expected application/vnd.in-toto+json")
body = base64.b64decode(env["payload"], validate=True)
sigs = [s for s in env["signatures"] if s.get("keyid") == keyid]
if not sigs:
    sys.exit(f"no signature with keyid {keyid}")
t = ptype.encode()
pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)
open(f"{tmp}/pae.bin", "wb").write(pae)
open(f"{tmp}/sig.bin", "wb").write(base64.b64decode(sigs[0]["sig"], validate=True))
stmt = json.loads(body)
print("subjects:", ", ".join(f'{s["name"]} sha256:{s["digest"]["sha256"]}' for s in stmt["subject"]))
print("predicateType:", stmt["predicateType"])
PY

if openssl pkey -pubin -in "$pub" -noout -text | head -n1 | grep -qi ed25519; then
    openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$tmp/pae.bin" -sigfile "$tmp/sig.bin" >"$tmp/out" 2>&1 || {
        cat "$tmp/out" >&2
        exit 1
    }
    echo "Verified OK"
else
    openssl dgst -sha256 -verify "$pub" -signature "$tmp/sig.bin" "$tmp/pae.bin"
fi
