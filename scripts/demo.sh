#!/usr/bin/env bash
# The main job on the embedded default model (stories260K): set up, build, print the model's
# config, generate a story, save one hook's activations to .npy, then the feature pipeline:
# harvest activations from the embedded corpus excerpt, train a TopK SAE, evaluate it on
# held-out text, analyze every latent into a SQLite feature database, explain every live latent
# (offline statistical explainer: no LLM endpoint needed) and score the explanations, and serve
# the web explorer on http://127.0.0.1:${PORT:-8080}/ (Ctrl-C stops it). `--no-serve` stops after
# writing results. Rerunning is safe: finished harvests, trainings, analyses and scores are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVE=1
for arg in "$@"; do
  case "$arg" in
    --no-serve) SERVE=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (expected --no-serve)" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target glassbox
GB=./build/release/glassbox
MODEL=models/stories260K/stories260K.bin
C=data/corpus
HOOK=blocks.2.hook_resid_post
echo "== glassbox info"
$GB info --model "$MODEL"
echo "== glassbox generate"
$GB generate --model "$MODEL" --prompt "Once upon a time" -n 120 --temp 0.8 --top-p 0.9 --seed 42
echo "== glassbox cache"
$GB cache --model "$MODEL" --prompt "Once upon a time, there was a little girl named Lily." \
  --hooks $HOOK --out out/demo
/usr/bin/python3 -c "import numpy as np; a = np.load('out/demo/$HOOK.npy'); print('out/demo/$HOOK.npy', a.dtype, a.shape)"
echo "== glassbox harvest"
$GB harvest --model "$MODEL" --corpus $C/tinystories_train_excerpt.txt \
  --hooks $HOOK --ctx 128 --tokens 60000 --out out/demo/store --store-stats
echo "== glassbox train-sae"
$GB train-sae --store out/demo/store --hook $HOOK --arch topk --k 16 \
  --d-sae 256 --epochs 8 --lr 4e-3 --batch-size 512 --out out/demo/sae
echo "== glassbox eval-sae"
$GB eval-sae --model "$MODEL" --sae out/demo/sae --corpus $C/tinystories_eval_excerpt.txt \
  --tokens 8000
echo "== glassbox analyze"
$GB analyze --model "$MODEL" --sae out/demo/sae --corpus $C/tinystories_train_excerpt.txt \
  --tokens 60000 --out out/demo/features.db
echo "== glassbox explain (offline; --endpoint URL --model NAME asks an LLM instead)"
$GB explain --db out/demo/features.db
echo "== glassbox score"
$GB score --db out/demo/features.db --plot out/demo/scores.svg -t 1
echo "== results: SAE (SAELens format) in out/demo/sae, loss plot out/demo/sae/loss.svg,"
echo "   feature database out/demo/features.db (schema: docs/analysis.md, docs/autointerp.md),"
echo "   explanation score histograms out/demo/scores.svg"
if [ "$SERVE" = 1 ]; then
  echo "== glassbox serve (open the URL below in a browser; Ctrl-C stops)"
  exec $GB serve --model "$MODEL" --sae out/demo/sae --db out/demo/features.db \
    --port "${PORT:-8080}"
fi
