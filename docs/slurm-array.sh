#!/bin/bash
# robustcert on Slurm: a job array certifies the selected inputs in SHARDS tasks (shard I = the
# task's SLURM_ARRAY_TASK_ID), each writing its journal to a shared file system; a dependent job
# merges the journals into one signed certificate. See docs/cluster.md.
#
#   sbatch docs/slurm-array.sh                 # submits the array and the merge job
#
# Change WORK, the certify arguments, and SHARDS (here and in --array). Every task must run the
# same robustcert binary: journals record its sha256 and merge refuses a mix.
#SBATCH --job-name=robustcert-shards
#SBATCH --array=0-3
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=robustcert-%A_%a.log
set -euo pipefail

SHARDS=4
WORK=${WORK:-/shared/robustcert}
KEY=${KEY:-$HOME/.robustcert/robustcert.key.pem}   # only the merge job reads it

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
    echo "submit with sbatch: this script is a job array (SLURM_ARRAY_TASK_ID is not set)" >&2
    exit 2
fi

# The merge: the first task submits it once, to run after every task of the array succeeded
# (afterok). A requeued task keeps its array job id, so the dependency still holds.
if [ "$SLURM_ARRAY_TASK_ID" = 0 ] && [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
    sbatch --job-name=robustcert-merge --dependency="afterok:${SLURM_ARRAY_JOB_ID}" \
        --output=robustcert-merge-%j.log --wrap \
        "robustcert merge ${WORK}/journals/shard-*-of-${SHARDS}.journal.jsonl --key ${KEY} \
         --out ${WORK}/certificates/model.intoto.jsonl"
fi

# --resume: a task restarted after preemption or a node failure (--requeue) continues from its
# journal; on the first start there is no journal and the run begins.
mkdir -p "${WORK}/journals" "${WORK}/certificates"
exec robustcert certify "${WORK}/model.onnx" \
    --dataset "${WORK}/data/dermamnist.npz" --split test \
    --method crown --eps 0.00392157 --clip 0 1 \
    --threads "${SLURM_CPUS_PER_TASK}" \
    --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" \
    --journal "${WORK}/journals/shard-${SLURM_ARRAY_TASK_ID}-of-${SHARDS}.journal.jsonl" \
    --out "${WORK}/certificates/model.intoto.jsonl" \
    --resume
