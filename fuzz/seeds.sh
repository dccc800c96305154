#!/bin/sh
# Writes the fuzz targets' seed corpora with cfx itself, into BUILD/corpus/<target>/ (once: a
# corpus that exists is kept, and grows as the fuzzer adds inputs to it).
# usage: fuzz/seeds.sh CFX BUILD     (CFX: the cfx program; BUILD: build-fuzz)
#
# What each corpus starts from:
#   npy, manifest   `cfx data signs` folders (uint8 images and labels, the manifest), and float32
#                   arrays of a run folder
#   idx             IDX files plain and gzip-compressed, of each element type (Python's struct)
#   image           PNGs written by cfx (the report's figures), and Pillow's PNG and JPEG kinds
#                   (gray, RGB, RGBA, palette, 16-bit, progressive), tests/data's odd JPEG
#   onnx            the bundle target's models, `cfx train`'s models when small, the tests'
#                   torch.onnx.export models (tests/py/onnx_oracle.py cnn, ae) and
#                   tests/py/onnx_models.py's hand-made and hostile files
#   concepts        the first images of data/vg_random.json
#   checkpoint      a checkpoint of build-fuzz/fuzz/checkpoint's model (CFX_FUZZ_WRITE_SEED)
#   llm             chat-completions replies (a string, text parts, an error, no choices), each
#                   with a two-line answer cache
#   wordnet         the binary cache cfx writes for a small WordNet (fuzz/tiny_wordnet.py)
#   bundle, run     `cfx competency fit` (on the bundle target's models) and `cfx counterfactual`
#                   on tiny signs, packed by fuzz/pack.py
set -eu
cfx=$(realpath "$1")
build=$2
here=$(cd "$(dirname "$0")" && pwd)
corpus="$build/corpus"
py=/usr/bin/python3
# Model-server replies and the answer cache, written whenever missing (this target came after
# the others' corpora were made).
llm_seeds() {
    [ -d "$corpus/llm" ] && return 0
    mkdir -p "$corpus/llm"
    $py - "$corpus/llm" <<'PY'
import json, sys
sep = "\n--cfx-fuzz-file--\n"
out = sys.argv[1]
cache = "\n".join(json.dumps({"key": k, "reply": r}) for k, r in
                  [("00000000000000aa", "The image is dark."), ("0123456789abcdef", "Noise.")]) + "\n"
replies = {
    "string": {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": " The image is too dark. "},
         "finish_reason": "stop"}]},
    "parts": {"choices": [{"message": {"role": "assistant", "content": [
        {"type": "text", "text": "Part one."}, {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "Part two."}]}}]},
    "error": {"error": {"message": "invalid API key", "type": "auth"}},
    "empty": {"choices": []},
}
for name, r in replies.items():
    open(f"{out}/{name}", "w").write(json.dumps(r) + sep + cache)
PY
}
llm_seeds
# WordNet's binary cache: the cache cfx writes for a small WordNet (fuzz/tiny_wordnet.py).
wordnet_seeds() {
    [ -d "$corpus/wordnet" ] && return 0
    tw="$build/seedwork-wordnet"
    rm -rf "$tw"
    $py "$here/tiny_wordnet.py" "$tw/db" >/dev/null &&
        CFX_CACHE_DIR="$tw/cache" "$cfx" concepts cost dog,chair sandal,person --wordnet "$tw/db" \
            >/dev/null || { echo "seeds.sh: the small WordNet's cache failed" >&2; exit 1; }
    mkdir -p "$corpus/wordnet"
    cp "$tw"/cache/wordnet-*.bin "$corpus/wordnet/tiny.bin"
    rm -rf "$tw"
}
wordnet_seeds
if [ -f "$corpus/.done" ]; then exit 0; fi
rm -rf "$corpus" "$build/seedwork"
mkdir -p "$build/seedwork"
w=$(realpath "$build/seedwork")
for t in npy idx image onnx manifest concepts checkpoint bundle run; do mkdir -p "$corpus/$t"; done
llm_seeds
wordnet_seeds
log="$w/seeds.log"
run() { "$@" >>"$log" 2>&1 || { echo "seeds.sh: failed: $* (see $log)" >&2; tail -n 5 "$log" >&2; exit 1; }; }

echo "seeds.sh: writing seed corpora into $corpus" >&2
# A tiny dataset for the manifest and npy targets and the bundle, and small models from it.
run "$cfx" data signs --out "$w/tiny" --size 8 --train 2 --calib 2 --test 2 --ood 1 --seed 1 --threads 1
run "$cfx" train classifier --data "$w/tiny" --out "$w/clf.onnx" --epochs 1 --batch 4 --threads 1
run "$cfx" train autoencoder --data "$w/tiny" --out "$w/ae.onnx" --epochs 1 --batch 4 --latent 4 --threads 1
# The seed bundle: cfx's fit on the models the bundle target uses, and a run folder on it.
mkdir -p "$w/tinym"
run env CFX_FUZZ_WRITE_SEED="$w/tinym" "$build/fuzz/bundle"
run "$cfx" competency fit --classifier "$w/tinym/classifier.onnx" --encoder "$w/tinym/encoder.onnx" \
    --decoder "$w/tinym/decoder.onnx" --data "$w/tiny" --out "$w/b" --threshold 0.15 --threads 1
run "$cfx" competency examples --bundle "$w/b" --data "$w/tiny" --out "$w/ex" --per-cause 1 --seed 2 --threads 1
run "$cfx" counterfactual --bundle "$w/b" --examples "$w/ex" --out "$w/run" --method igd,lnn,best \
    --max-iter 3 --batch 4 --threads 1
run "$cfx" report "$w/run"

# npy and manifest.
for f in "$w"/tiny/*.npy "$w"/run/images.npy "$w"/b/calib_scores.npy; do cp "$f" "$corpus/npy/"; done
for split in test ood; do
    [ -f "$w/tiny/${split}_images.npy" ] || { echo "seeds.sh: no $split split in $w/tiny" >&2; exit 1; }
done
$py "$here/pack.py" "$corpus/manifest/signs" "$w/tiny/manifest.json" "$w/tiny/test_images.npy" \
    "$w/tiny/test_labels.npy" "$w/tiny/ood_images.npy" "$w/tiny/ood_labels.npy"

# IDX: each element type, 1 to 3 dimensions, plain and gzip.
$py - "$corpus/idx" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
types = {0x08: "B", 0x09: "b", 0x0B: ">h", 0x0C: ">i", 0x0D: ">f", 0x0E: ">d"}
for code, fmt in types.items():
    for shape in ((5,), (2, 3), (2, 2, 3)):
        n = 1
        for d in shape: n *= d
        head = struct.pack(">BBBB", 0, 0, code, len(shape)) + b"".join(struct.pack(">I", d) for d in shape)
        body = b"".join(struct.pack(fmt, (i * 37) % 100 - (0 if code == 8 else 50)) for i in range(n))
        name = "t%02x_%dd" % (code, len(shape))
        open("%s/%s.idx" % (out, name), "wb").write(head + body)
        open("%s/%s.idx.gz" % (out, name), "wb").write(gzip.compress(head + body))
PY

# Images: cfx's own PNGs (the report's figures are large; the run's strips are kept when small)
# and Pillow's kinds.
find "$w/run" -name '*.png' -size -24k | head -n 4 | while read -r f; do cp "$f" "$corpus/image/"; done
cp "$here/../tests/data/jpeg_stb_gives_up.jpg" "$corpus/image/"
$py - "$corpus/image" <<'PY'
import sys
import numpy as np
from PIL import Image
out = sys.argv[1]
base = Image.new("RGB", (7, 5))
for y in range(5):
    for x in range(7):
        base.putpixel((x, y), (x * 36, y * 50, (x + y) * 20))
base.save(out + "/rgb.png")
base.convert("L").save(out + "/gray.png")
base.convert("LA").save(out + "/gray_alpha.png")
base.convert("RGBA").save(out + "/rgba.png")
base.convert("P").save(out + "/palette.png")
Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(out + "/gray16.png")
base.save(out + "/rgb.jpg", quality=90)
base.convert("L").save(out + "/gray.jpg", quality=90)
base.save(out + "/progressive.jpg", quality=80, progressive=True)
base.save(out + "/sub420.jpg", quality=75, subsampling=2)
PY

# ONNX: cfx's models and the tests' hand-made and hostile ones (only files under 64 KiB).
mkdir -p "$w/onnx"
run $py "$here/../tests/py/onnx_models.py" make "$w/onnx"
run $py "$here/../tests/py/onnx_models.py" hostile "$w/onnx"
for kind in cnn ae; do # torch.onnx.export's graphs (batch norm, pooling, resize, transposed conv)
    mkdir -p "$w/torch_$kind"
    run $py "$here/../tests/py/onnx_oracle.py" $kind "$w/torch_$kind"
done
find "$w" -name '*.onnx' -size -64k | while read -r f; do
    cp "$f" "$corpus/onnx/$(echo "${f#"$w"/}" | tr / _)"
done

# Concepts: the first 6 images of the demo's annotations.
$py - "$here/../data/vg_random.json" "$corpus/concepts/vg6.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["images"] = d["images"][:6]
json.dump(d, open(sys.argv[2], "w"), indent=1)
PY

# Checkpoint: written by the target's own model.
CFX_FUZZ_WRITE_SEED="$corpus/checkpoint/adam.ckpt" "$build/fuzz/checkpoint" >>"$log" 2>&1

# Bundle and run folders, packed in the targets' file order.
b="$w/b"
$py "$here/pack.py" "$corpus/bundle/signs" "$b/bundle.json" "$b/parce.json" "$b/calib_latents.npy" \
    "$b/calib_scores.npy"
r="$w/run"
$py "$here/pack.py" "$corpus/run/igd_lnn_best" "$r/run.json" "$r/results.jsonl" "$r/images.npy" \
    "$r"/counterfactuals_igd.npy "$r"/counterfactuals_fgd.npy "$r"/counterfactuals_reco.npy \
    "$r"/counterfactuals_lgd.npy "$r"/counterfactuals_lnn.npy "$r"/counterfactuals_best.npy
touch "$corpus/.done"
ls "$corpus" | while read -r t; do
    printf 'seeds.sh: %-10s %3d files, %7d bytes\n' "$t" "$(ls "$corpus/$t" | wc -l)" \
        "$(cat "$corpus/$t"/* | wc -c)" >&2
done
