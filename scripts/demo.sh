#!/usr/bin/env bash
# The main job on the embedded default model: set up, build, print the model's config and hook
# points, generate a story, and save one hook's activations to .npy.
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
