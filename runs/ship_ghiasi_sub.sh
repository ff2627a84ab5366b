#!/bin/bash
# ship runs/distill_ghiasi_sub as the ghiasi model (run from the repo root, venv active; STEPS and NOTE in env)
set -e
D=src/brushwork/models/ghiasi
mkdir -p /tmp/pf
OLD=/tmp/pf/MODEL_ghiasi_old.json
cp runs/ghiasi_teacher/MODEL.json $OLD
DCMD=$(sed "s/--steps 3000/--steps $STEPS/; s/ -q / /" runs/distill_ghiasi_sub.sh)
ARGS=()
while IFS= read -r c; do ARGS+=(--command "$c"); done < <(python -c "import json;[print(c) for c in json.load(open('$OLD'))['commands']]")
python scripts/ship_model.py runs/distill_ghiasi_sub $D "${ARGS[@]}" --command "$DCMD" --note "$NOTE"
rm -rf /tmp/pf/calib && mkdir -p /tmp/pf/calib
python - <<'PY'
from pathlib import Path
import fnmatch, shutil
held = ["*brad_pitt*", "*golden_gate*", "*stata*", "imagenet_n02129165_lion*", "*tubingen*", "*chicago*"]
files = sorted(p for p in Path("../shared/data/train/content").iterdir() if p.is_file())
files = [p for p in files if not any(fnmatch.fnmatch(p.name, g) for g in held)][::100]
for p in files:
    shutil.copyfile(p, Path("/tmp/pf/calib") / p.name)
print(len(files), "calibration photos")
PY
python -m brushwork export onnx --model $D -o /tmp/pf/ghiasi.onnx
python -m brushwork export quantize /tmp/pf/ghiasi.onnx --calibrate /tmp/pf/calib -o /tmp/pf/ghiasi.int8.onnx
cp /tmp/pf/ghiasi.int8.onnx $D/model.int8.onnx
python - <<'PY'
import json, hashlib
from pathlib import Path
old = json.load(open('/tmp/pf/MODEL_ghiasi_old.json'))
d = Path('src/brushwork/models/ghiasi'); card = json.loads((d / 'MODEL.json').read_text())
card['distill_steps'] = card.pop('steps')
card['steps'] = old['steps']
card['teacher'] = {'sha256': old['sha256'], 'steps': old['steps'], 'commands': old['commands'], 'note': old['note'],
                   'final_logged': old['final_logged'], 'where': 'runs/ghiasi_teacher (a copy of the folder shipped before; git history: src/brushwork/models/ghiasi before this commit)'}
card['data'] = old['data']
i8 = (d / 'model.int8.onnx').read_bytes()
card['int8'] = {**old['int8'], 'sha256': hashlib.sha256(i8).hexdigest(), 'bytes': len(i8), 'source_sha256': card['sha256']}
card['int8'].pop('measured', None)
card['init_cin'] = old.get('init_cin')
card['previous'] = {'sha256': old['sha256'], 'note': 'the plain-layout ghiasi net shipped before (the teacher; git history)'}
(d / 'MODEL.json').write_text(json.dumps(card, indent=2) + '\n')
print(card['sha256'][:16], card['int8']['sha256'][:16], card['int8']['bytes'])
PY
