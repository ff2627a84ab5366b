#!/bin/bash
# Train (or continue) the shipped CIN model and AdaIN decoder side by side, in time-limited legs.
#
#   DATA=.gpu/data DEV=cuda T=500 bash scripts/train_shipped.sh      # one ~500 s leg on a GPU
#
# DATA is a folder made by scripts/pack_training_data.py. Each leg runs both trainings with a large
# --steps until T seconds pass, then SIGTERM makes each write a checkpoint of its last step; the next
# leg resumes from it. After each leg the models are written at the checkpoint step (the same command
# with --steps N), so RUNS/*/model is always usable. The shipped models' MODEL.json hold the commands
# with the --steps they were finished at. On CPU use e.g. DEV=cpu B=4 C=128 (hours, not minutes).
# RUNS/cin_slim/model is the teacher: the shipped CIN net is its distilled copy, made on a CPU by the
# second command in src/brushwork/models/cin/MODEL.json (brushwork train distill --end-kernel 5).
set -u
T=${T:-500}; DEV=${DEV:-cuda}; B=${B:-8}; C=${C:-256}; DATA=${DATA:-.gpu/data}; RUNS=${RUNS:-runs}
LOGS=${LOGS:-$RUNS}; PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
S=""
for s in starry_night the_scream great_wave composition_vii water_lilies shipwreck_of_the_minotaur \
         starry_night_over_the_rhone udnie; do S="$S --style $DATA/style/$s.jpg"; done
declare -A CMD
CMD[cin_slim]="train cin $S --content $DATA/content --exclude msg_flowers* --batch $B --crop $C \
  --checkpoint-every 500 --device $DEV -q --widths 16,32,64"
CMD[adain]="train adain --content $DATA/content --styles $DATA/train_style --styles $DATA/style \
  --exclude *scream* --exclude *great_wave* --exclude fns_wave* --exclude *la_muse* --exclude *candy* \
  --exclude *udnie* --exclude *woman_with_hat* --batch $B --crop $C --lr 5e-4 --lr-decay 5e-5 \
  --style-weight 10 --checkpoint-every 500 --device $DEV -q"
mkdir -p "$LOGS"
set -f  # the --exclude globs reach brushwork unexpanded
for r in "${!CMD[@]}"; do
  timeout -s TERM "$T" $PY -m brushwork ${CMD[$r]} -o "$RUNS/$r" --steps 1000000 > "$LOGS/$r.train.log" 2>&1 &
done
wait
for r in "${!CMD[@]}"; do
  step=$($PY -c "import torch; print(torch.load('$RUNS/$r/checkpoint.pt', weights_only=True)['step'])")
  echo "$r: step $step"
  $PY -m brushwork ${CMD[$r]} -o "$RUNS/$r" --steps "$step" >> "$LOGS/$r.train.log" 2>&1 &
done
wait
