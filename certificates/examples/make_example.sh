#!/usr/bin/env bash
# Regenerates the example certificate in certificates/examples/: a CROWN (Linf) certificate of
# the demo dermatology CNN on a handful of test images.
#
# usage: certificates/examples/make_example.sh            # demo/dermacnn.onnx + demo/synthetic_dermamnist.npz
#        certificates/examples/make_example.sh fixture    # verifier-tests/fixtures/models/cnn_bn.onnx (labels = its predictions)
# env:   COUNT (images, default 8), EPS (default 1/255), RADII, CLIP ("0 1"), KEY (a private key PEM;
#        default: a throw-away key generated in a temporary directory and deleted afterwards), OUT
#        (output directory, default certificates/examples).
#
# Writes OUT/NAME.intoto.jsonl, OUT/NAME.sigstore.json, OUT/NAME.pub.pem (public key only: the
# private key is never written under OUT), OUT/NAME.x.npy and OUT/NAME.y.npy (the certified
# inputs and labels), then checks the certificate with `check-cert --recheck` and, when openssl
# is present, with verifier-tests/verify_with_openssl.sh. Needs cargo, python3 and numpy.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mode=${1:-demo}
out=${OUT:-certificates/examples}
count=${COUNT:-8}
mkdir -p "$out"

cargo build --release --quiet
rc=target/release/robustcert

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$mode" in
demo)
    model=demo/dermacnn.onnx
    data=demo/synthetic_dermamnist.npz
    name=${NAME:-dermacnn-crown-linf}
    eps=${EPS:-0.00392156862745098} # 1/255
    radii=${RADII:-0.00196078431372549,0.00392156862745098,0.00784313725490196} # 0.5, 1, 2 / 255
    clip=${CLIP:-0 1}
    names=$(python3 -c 'import json; print(",".join(json.load(open("demo/model_card.json"))["class_names"]))')
    prep="uint8 RGB test images / 255, HWC to CHW (float32 in [0, 1]); normalisation (x - mean) / std is inside the graph"
    ;;
fixture)
    model=verifier-tests/fixtures/models/cnn_bn.onnx
    data=verifier-tests/fixtures/models/cnn_bn.input.npy
    name=${NAME:-cnn_bn-crown-linf}
    eps=${EPS:-0.001}
    radii=${RADII:-0.0005,0.001,0.002}
    clip=${CLIP:--1 1}
    names=""
    prep="none: the stored arrays are the model input"
    ;;
*)
    echo "usage: $0 [demo|fixture]" >&2
    exit 2
    ;;
esac
for f in "$model" "$data"; do
    [ -f "$f" ] || { echo "$f is missing" >&2; exit 2; }
done

# The model's input layout, to arrange the images as it expects.
"$rc" inspect "$model" --json >"$tmp/inspect.json"
"$rc" predict "$model" --input "$data" --json >"$tmp/pred.json" 2>/dev/null || true

python3 - "$data" "$count" "$out/$name.x.npy" "$out/$name.y.npy" "$tmp/inspect.json" "$tmp/pred.json" <<'PY'
import json, sys
import numpy as np

data, count, xout, yout, inspect, pred = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
shape = json.load(open(inspect))["inputs"][0]["shape"]  # e.g. [1, 3, 28, 28]
sample = [d for d in shape[1:]]
if data.endswith(".npz"):
    z = np.load(data)
    names = list(z.keys())
    pick = lambda *cands: next((n for n in cands if n in names), None)
    xn = pick("test_images", "x_test", "X_test", "images_test", "test_x", "x", "images")
    yn = pick("test_labels", "y_test", "Y_test", "labels_test", "test_y", "y", "labels")
    if xn is None or yn is None:
        sys.exit(f"cannot tell images from labels in {data}: {names}")
    x, y = z[xn][:count], z[yn][:count].reshape(-1)
    print(f"{data}: {xn} {z[xn].shape} {z[xn].dtype}, {yn} {z[yn].shape}; using the first {len(y)}")
else:
    x = np.load(data)[:count]
    # Labels = the model's own f32 predictions (a fixture has no labels).
    rows = json.load(open(pred))["outputs"]
    y = np.array([int(np.argmax(r)) for r in rows][: len(x)])
    print(f"{data}: {x.shape}, labels = the model's predictions {y.tolist()}")
if x.dtype == np.uint8:
    x = x.astype(np.float32) / 255.0
x = x.astype(np.float32)
# Channels-last images for a channels-first model.
if list(x.shape[1:]) != sample and x.ndim == 4 and [x.shape[3], x.shape[1], x.shape[2]] == sample:
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
if list(x.shape[1:]) != sample:
    sys.exit(f"images shaped {x.shape[1:]} do not fit the model input {shape}")
np.save(xout, x)
np.save(yout, y.astype(np.int64))
PY

if [ -n "${KEY:-}" ]; then
    key=$KEY
    openssl pkey -in "$key" -pubout -out "$out/$name.pub.pem"
else
    "$rc" keygen --out "$tmp/keys" >/dev/null
    key=$tmp/keys/robustcert.key.pem
    cp "$tmp/keys/robustcert.pub.pem" "$out/$name.pub.pem"
    echo "signed with a throw-away key (deleted on exit); its public key is $out/$name.pub.pem"
fi

# shellcheck disable=SC2086
"$rc" certify "$model" --data "$out/$name.x.npy" --labels "$out/$name.y.npy" --method crown --norm inf \
    --eps "$eps" --radii "$radii" --clip $clip --criteria "clean_accuracy>=0.5" \
    ${names:+--class-names "$names"} --preprocessing "$prep" \
    --signer "robustcert example (make_example.sh)" --key "$key" --out "$out/$name.intoto.jsonl" || [ $? -eq 1 ]

"$rc" check-cert "$out/$name.intoto.jsonl" --key "$out/$name.pub.pem" --model "$model" \
    --data "$out/$name.x.npy" --labels "$out/$name.y.npy" --recheck
if command -v openssl >/dev/null; then
    verifier-tests/verify_with_openssl.sh "$out/$name.intoto.jsonl" "$out/$name.pub.pem"
fi
