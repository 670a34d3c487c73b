#!/usr/bin/env bash
# Issue #5's SAE acceptance runs: harvest ~400k tokens of stories260K blocks.2.hook_resid_post
# from tinystories_part1, train the four architectures (d_sae 1024, 10 epochs) with the settings
# below, evaluate each on 50k tokens of part2, print one line per SAE.
# usage: bench/sae_acceptance.sh [GLASSBOX] [SHARED] [WORKDIR]      (about 5 minutes, 2 cores)
set -euo pipefail
GB=${1:-build/release/glassbox}
SHARED=${2:-../shared}
W=${3:-/tmp/glassbox-sae-acceptance}
M=models/stories260K/stories260K.bin
HOOK=blocks.2.hook_resid_post
mkdir -p "$W"
"$GB" harvest -m "$M" --corpus "$SHARED/corpus/tinystories_part1.txt" --hooks $HOOK \
  --ctx 128 --tokens 400000 --out "$W/store" -t 2 2>/dev/null
run() {  # name, train-sae arguments...
  local name=$1; shift
  rm -rf "${W:?}/$name"
  "$GB" train-sae --store "$W/store" --hook $HOOK --d-sae 1024 --epochs 10 --lr 4e-3 \
    --batch-size 1024 -t 2 --out "$W/$name" "$@" 2>/dev/null
  "$GB" eval-sae -m "$M" --sae "$W/$name" --corpus "$SHARED/corpus/tinystories_part2.txt" \
    --tokens 50000 -t 2 >"$W/$name.eval.json"
  /usr/bin/python3 - "$W" "$name" <<'PY'
import json, sys
w, name = sys.argv[1], sys.argv[2]
e = json.load(open(f"{w}/{name}.eval.json"))
log = [json.loads(l) for l in open(f"{w}/{name}/training_log.jsonl")]
print(f"{name:10} fvu {e['fvu']:.4f}  l0 {e['l0']:6.2f}  dead {100 * e['dead_frac']:5.2f} %  "
      f"ce_rec_zero {e['ce_recovered_zero']:.4f}  ce_rec_mean {e['ce_recovered_mean']:.4f}  "
      f"train {log[-1]['tok_s']:.0f} tok/s")
PY
}
run topk --arch topk --k 16
run batchtopk --arch batchtopk --k 16
run relu --arch relu --l1-coeff 0.5
run jumprelu --arch jumprelu --l0-coeff 0.2
