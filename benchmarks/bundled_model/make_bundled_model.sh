#!/usr/bin/env bash
# Rebuilds the model bundled with dawm (src/dawm/model/weights/default) from simulated data only.
#   bash benchmarks/bundled_model/make_bundled_model.sh WORK_DIR [JOBS]
# About 1 h 20 min on 2 CPU cores (simulate 3 min, preprocess 35 min, label 5 min, train 38 min);
# on a machine with CUDA, dawm train uses the GPU with the same settings. dawm train's defaults make
# DAWM soft targets (the labels' label-DAWM_probseg) and calibrate the DAWM threshold on validation.
# The lesion targets are the simulator's true lesions (derivatives/dawm-label-truelesion, train.json's
# "labels"): the simulated rater's masks that the labels pass on leave out most lesions under 100 mm3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:?usage: make_bundled_model.sh WORK_DIR [JOBS]}"
jobs="${2:-2}"
dawm simulate "$work/cohort" --patients 32 --controls 8 --sessions 2 --scanners 3 --resolution 2 --seed 7 --jobs "$jobs"
dawm preprocess "$work/cohort" --jobs "$jobs" --config "$here/preprocess.json" || echo "a session that fails preprocessing (its registration check) is left out of training"
dawm label "$work/cohort" --jobs "$jobs"
python -c "from dawm.simulate.truth import write_truth_labels; write_truth_labels('$work/cohort', name='dawm-label-truelesion', dawm_from='dawm-label')"
dawm train "$work/cohort" --model-dir "$work/model" --config "$here/train.json" --folds 0,
dawm export-model "$work/model" "$here/../../src/dawm/model/weights/default" --folds 0
