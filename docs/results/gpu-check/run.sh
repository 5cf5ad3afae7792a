# icm's GPU code paths (LoRA fine-tuning in bf16, in-process scoring on CUDA, an ICM run and
# an eval scored by the fine-tuned model) on a tiny random model. Run from the repo root.
set -o pipefail
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore::FutureWarning
G=.gpucheck
REPO=$(pwd)
PY=${PY:-python3}
export OUT=${OUT:-/tmp/gpucheck-out}; mkdir -p $OUT
if [ -z "$SKIP_INSTALL" ]; then
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $G/whl/*.whl || exit 1
python3 - <<'PY'
import importlib.metadata as m
for n in ("torch","pyarrow","fsspec","huggingface-hub","numpy","scikit-build-core","nanobind","httpx","matplotlib"):
    try: print(n, m.version(n))
    except Exception as e: print(n, "MISSING")
PY
export PYTHONPATH=/tmp/site
t0=$(date +%s)
[ -d /tmp/icm/icm ] || python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/icm . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo "built icm in $(( $(date +%s) - t0 )) s"
export PYTHONPATH=/tmp/icm:/tmp/site
fi
rm -rf /tmp/g && cp -r "$REPO/$G" /tmp/g && cd /tmp
ICM="$PY -m icm.cli"
rm -rf /tmp/g/ft /tmp/g/run2
echo "== finetune (GPU, bf16)"; t0=$(date +%s)
$ICM finetune /tmp/g/run --base /tmp/g/tiny --out /tmp/g/ft --epochs 2 2>&1 | grep -v Warning | tail -4 || exit 1
echo "finetune wall $(( $(date +%s) - t0 )) s"
$PY -c "import json; r=json.load(open('/tmp/g/ft/finetune.json')); print({k: r[k] for k in r if k in ('train_seconds','device','dtype','epoch_loss')})"
echo "== score on GPU and on CPU"
$PY /tmp/g/compare.py /tmp/g/ft > $OUT/gpu.json || exit 1
CUDA_VISIBLE_DEVICES= $PY /tmp/g/compare.py /tmp/g/ft > $OUT/cpu.json || exit 1
OUT=$OUT $PY - <<'PY'
import json, os
g = json.load(open(os.environ["OUT"] + "/gpu.json")); c = json.load(open(os.environ["OUT"] + "/cpu.json"))
print("gpu:", g["device"], g["dtype"], "| cpu:", c["device"], c["dtype"])
d = [abs(a - b) for a, b in zip(g["gaps"], c["gaps"])]
same = sum((a > 0) == (b > 0) for a, b in zip(g["gaps"], c["gaps"]))
print(f"{len(d)} prompts: max |gap_gpu - gap_cpu| {max(d):.4f}, mean {sum(d)/len(d):.4f}; same sign {same}/{len(d)}")
PY
echo "== icm run scored in process on the GPU by the fine-tuned model"; t0=$(date +%s)
$ICM run --testbed capitals --size 16 --K 60 --model-path /tmp/g/ft --cache off --out /tmp/g/run2 --quiet 2>&1 | tail -4
echo "run wall $(( $(date +%s) - t0 )) s"; cp /tmp/g/run2/metrics.json $OUT/run2-metrics.json 2>/dev/null
echo "== icm eval --finetuned (base and fine-tuned side by side, in process)"; t0=$(date +%s)
$ICM eval --labels golden --testbed capitals --train-size 16 --test-size 16 --finetuned /tmp/g/ft --cache off 2>&1 | grep -v '^ ' | tail -6
echo "eval wall $(( $(date +%s) - t0 )) s"
