#!/usr/bin/env bash
# The main job on the embedded default model: set up, build, print the model's config and hook
# points, generate a story, save one hook's activations to .npy, then learn features: harvest
# activations from the embedded corpus excerpt, train a TopK SAE on them and evaluate it on
# held-out text. Rerunning is safe: finished harvests and trainings are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target glassbox
GB=./build/release/glassbox
MODEL=models/stories260K/stories260K.bin
echo "== glassbox info"
$GB info --model "$MODEL"
echo "== glassbox generate"
$GB generate --model "$MODEL" --prompt "Once upon a time" -n 200 --temp 0.8 --top-p 0.9 --seed 42
echo "== glassbox cache"
$GB cache --model "$MODEL" --prompt "Once upon a time, there was a little girl named Lily." \
  --hooks blocks.2.hook_resid_post --out out/demo
/usr/bin/python3 -c "import numpy as np; a = np.load('out/demo/blocks.2.hook_resid_post.npy'); print('out/demo/blocks.2.hook_resid_post.npy', a.dtype, a.shape)"
C=data/corpus
echo "== glassbox harvest"
$GB harvest --model "$MODEL" --corpus $C/tinystories_train_excerpt.txt \
  --hooks blocks.2.hook_resid_post --ctx 128 --tokens 60000 --out out/demo/store --store-stats
echo "== glassbox train-sae"
$GB train-sae --store out/demo/store --hook blocks.2.hook_resid_post --arch topk --k 16 \
  --d-sae 256 --epochs 8 --lr 4e-3 --batch-size 512 --out out/demo/sae
echo "== glassbox eval-sae"
$GB eval-sae --model "$MODEL" --sae out/demo/sae --corpus $C/tinystories_eval_excerpt.txt \
  --tokens 8000
echo "== done: SAELens-format SAE in out/demo/sae (loss plot out/demo/sae/loss.svg)"
