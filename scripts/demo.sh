#!/bin/sh
# `make demo`: cfx's main jobs on the built-in data, writing everything under demo-out/.
#  1. Concepts (V-CECE): for each of the 499 Visual Genome images, the closest image of another
#     scene class and the cheapest WordNet edit set; then the concepts that matter for one class.
#  2. Fashion-MNIST (ankle boots held out): prepare the splits, train the reference classifier
#     and autoencoder, and report test accuracy and reconstruction error.
#  3. Competency (PaRCE) on those models: calibrate on the calib split, report how well rho is
#     calibrated on the test split, and make low-competency examples for each cause.
#  4. Counterfactuals: the five methods and best on a seeded sample of those examples, their
#     metrics, and the HTML report.
#  5. Concepts on pixels (V-CECE's loop): scenes of Fashion-MNIST items with a class rule, the
#     conv-pool classifier trained on them (the reference one memorises scenes: 64% test
#     accuracy), the loop in the three modes with the built-in editor (--away: never toward
#     the classifier's own label), and the evaluation beside the rule's least number of edits.
# Environment: DEMO_EPOCHS (default 10), DEMO_THREADS (default: all cores), DEMO_OUT,
# DEMO_COUNTERFACTUALS (examples given to the methods, default 60), DEMO_SCENES (scenes
# generated, default 12000), DEMO_SCENE_EPOCHS (the scene classifier's, default 4),
# DEMO_LOOPS (test scenes edited per mode, default 100).
set -eu
cfx=${1:-build/cfx}
out=${DEMO_OUT:-demo-out}
epochs=${DEMO_EPOCHS:-10}
threads=${DEMO_THREADS:-0}
ncf=${DEMO_COUNTERFACTUALS:-60}
nscenes=${DEMO_SCENES:-12000}
scene_epochs=${DEMO_SCENE_EPOCHS:-4}
nloops=${DEMO_LOOPS:-100}
mkdir -p "$out"

echo "== 1. concepts: nearest counterfactual scene for every Visual Genome image"
"$cfx" concepts nearest --data data/vg_random.json --labels claude-3-5-sonnet --all \
    --out "$out/nearest.jsonl" --force --threads "$threads"
echo
echo "== concepts whose edits most often move an image out of 'kitchen'"
"$cfx" concepts global --data data/vg_random.json --labels claude-3-5-sonnet --class kitchen | head -n 15
echo

echo "== 2. Fashion-MNIST: splits (class 9, ankle boot, held out)"
"$cfx" data fashion-mnist --out "$out/fashion-mnist" --force
echo
echo "== train the reference classifier ($epochs epochs)"
"$cfx" train classifier --data "$out/fashion-mnist" --out "$out/classifier.onnx" --force \
    --epochs "$epochs" --threads "$threads"
echo
echo "== train the reference autoencoder ($epochs epochs)"
"$cfx" train autoencoder --data "$out/fashion-mnist" --out "$out/autoencoder.onnx" --force \
    --epochs "$epochs" --threads "$threads"
echo
echo "== evaluate the classifier on the test split"
"$cfx" eval classifier --model "$out/classifier.onnx" --data "$out/fashion-mnist"
echo
echo "== 3. competency (PaRCE): calibrate on the calib split"
"$cfx" competency fit --classifier "$out/classifier.onnx" --encoder "$out/encoder.onnx" \
    --decoder "$out/decoder.onnx" --data "$out/fashion-mnist" --out "$out/bundle" --force \
    --threads "$threads"
echo
echo "== how well competency is calibrated on the test split, and what it separates"
"$cfx" competency report --bundle "$out/bundle" --data "$out/fashion-mnist" \
    --out "$out/competency" --force --threads "$threads"
echo
echo "== low-competency examples for each cause"
"$cfx" competency examples --bundle "$out/bundle" --data "$out/fashion-mnist" \
    --out "$out/examples" --force --threads "$threads"
echo
echo "== 4. counterfactuals: IGD, FGD, Reco, LGD, LNN and best on $ncf of the examples"
"$cfx" counterfactual --bundle "$out/bundle" --examples "$out/examples" --method all,best \
    --limit "$ncf" --out "$out/counterfactuals" --force --threads "$threads"
echo
echo "== the counterfactuals' metrics (FID, KID and CMMD on the classifier's features)"
"$cfx" evaluate "$out/counterfactuals" --data "$out/fashion-mnist" --threads "$threads"
echo
echo "== the report"
"$cfx" report "$out/counterfactuals" --competency "$out/competency" --force
echo
echo "== 5. concepts on pixels: $nscenes scenes of Fashion-MNIST items, classes by a rule"
"$cfx" data scenes --out "$out/scenes" --count "$nscenes" --size 48 --force
cat "$out/scenes/rule.txt"
echo
echo "== train the conv-pool classifier on the scenes ($scene_epochs epochs)"
"$cfx" train classifier --arch conv-pool --data "$out/scenes" \
    --out "$out/scenes-classifier.onnx" --force --epochs "$scene_epochs" --lr 3e-3 \
    --threads "$threads"
for mode in local global local-global; do
    echo
    echo "== edit $nloops test scenes until the classifier's label flips ($mode order)"
    "$cfx" concepts edit --data "$out/scenes/concepts.json" --images "$out/scenes" --labels rule \
        --classifier "$out/scenes-classifier.onnx" --mode "$mode" --away --all --split test \
        --limit "$nloops" --out "$out/edit-$mode" --force --threads "$threads"
done
echo
echo "== the loops: success, edits beside the rule's minimum, the concepts they moved"
"$cfx" concepts evaluate "$out/edit-local" "$out/edit-global" "$out/edit-local-global"
echo
echo "demo outputs are in $out/: edit-<mode>/steps/<id>/<k>.png (every edit step's image),"
echo "$out/ reconstructions.png (test images over their reconstructions),"
echo "competency/reliability.png (the reliability diagram), examples/<cause>.png (examples),"
echo "counterfactuals/strips/<cause>.png (each method's counterfactuals, rho under each),"
echo "and the whole run as one page: $out/counterfactuals/report.html"
