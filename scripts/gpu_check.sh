#!/usr/bin/env bash
# The checks that need a GPU, as one script, from the repository's root on a machine with CUDA:
# the CUDA tests (every lesson's torch on cuda equals cpu; every workbook built on CUDA is the committed
# one), then generate timed on cpu and on cuda (scripts/bench_generate.py), then the full-data fit behind
# top_movies (the lesson's model on 100,000 synthetic ratings, ml-100k's size) on cpu and on cuda
# (scripts/bench_fit.py: issue 23, item 6). Packages the machine lacks
# (xlsxwriter, openpyxl, et_xmlfile) may lie as wheels in .whl/; LibreOffice is not needed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), '| CPU threads', torch.get_num_threads())"
python3 -m pytest -q -p no:cacheprovider -m cuda -rs tests/test_workbooks.py tests/test_sameness.py \
    tests/test_collab.py tests/test_graddesc.py tests/test_regularization.py
python3 scripts/bench_generate.py --devices cpu cuda --repeat "${REPEAT:-3}"
python3 scripts/bench_fit.py --devices cpu cuda --repeat "${REPEAT:-3}"
