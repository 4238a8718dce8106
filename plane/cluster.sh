#!/usr/bin/env bash
# A real control plane on 127.0.0.1 for the tests: etcd, kube-apiserver (RBAC, service-account tokens,
# PodSecurity admission), kube-controller-manager, kube-scheduler, one simulated node (KWOK's controller
# plays its kubelet: the pods bound to it become Ready, no container runs) and Flux's source-,
# kustomize- and notification-controller, built from the Go modules pinned under tools/ (see
# docs/cluster.md).
#
#   plane/cluster.sh build   build the binaries into a cache keyed by tools/*/go.{mod,sum} (or reuse it)
#   plane/cluster.sh up      build, then start everything; writes .cluster/kubeconfig and .cluster/env
#   plane/cluster.sh down    stop every process `up` started (by pid) and remove .cluster/
#   plane/cluster.sh status  exit 0 when every process runs and the API server answers /readyz
#   plane/cluster.sh run CMD...  run CMD with the control plane up: reuse a running one, else start one
#                              and stop it when CMD ends (how `make test` and `make demo-cluster` use it)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${GITOPS_CLUSTER_STATE:-$ROOT/.cluster}"
TOOLS="$ROOT/tools"
CACHE_ROOT="${GITOPS_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-cluster}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
KUBECTL="${KUBECTL:-$(command -v kubectl || echo "$ROOT/.venv/bin/kubectl")}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# Every module under tools/ names a go version this machine's Go has; never fetch another toolchain.
export GOTOOLCHAIN=local
NAMESPACE=flux-system
CONTROLLERS=(source-controller kustomize-controller notification-controller)
# What makes a Deployment roll out: the controllers that write ReplicaSets and Pods, the scheduler that
# binds them, and KWOK, which plays the kubelet of the simulated node NODE_NAME.
KUBE_CONTROLLERS=(kube-controller-manager kube-scheduler kwok)
NODE_NAME="kwok-node-0"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
  printf '[cluster] error: %s\n' "$*" >&2
  exit 1
}

# --- build ------------------------------------------------------------------------------------------

# Each component is built from its own module under tools/ into its own cache entry, keyed by what
# changes its binaries: the Go version, the lines of this script that build it, and its go.mod (comments
# aside) and go.sum. Bumping one controller rebuilds that controller only.
COMPONENTS=(kube kwok "${CONTROLLERS[@]}")

builder() {
  case "$1" in
    kube | kwok) echo "build_$1" ;;
    *) echo build_controller ;;
  esac
}

component_key() {
  local name=$1 builder
  builder="$(builder "$name")"
  {
    "$GO" version
    # The settings that change what `go build` produces without changing the modules (`go help
    # environment`: GOFIPS140 selects another copy of the cryptography code; GOARM64 is arm64's GOAMD64).
    "$GO" env GOOS GOARCH GOAMD64 GOARM64 CGO_ENABLED GOEXPERIMENT GOFLAGS GOFIPS140
    sed -n "/^$builder()/,/^}/p" "$0"
    grep -hv '^[[:space:]]*//' "$TOOLS/$name/go.mod"
    cat "$TOOLS/$name/go.sum"
  } | sha256sum | cut -c1-16
}

component_dir() { echo "$CACHE_ROOT/$1-$(component_key "$1")"; }

module_version() { (cd "$TOOLS/$1" && "$GO" list -m -f '{{.Version}}' "$2"); }
module_dir() { (cd "$TOOLS/$1" && "$GO" list -m -f '{{.Dir}}' "$2"); }

build_kube() {
  local out=$1 kube version minor
  kube="$(module_version kube k8s.io/kubernetes)"
  minor="${kube#v1.}"
  minor="${minor%%.*}"
  # What Kubernetes' own build stamps (hack/lib/version.sh), so /version reports the real release.
  version="-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1"
  version+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  local cmd
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    (cd "$TOOLS/kube" && "$GO" build -mod=readonly -trimpath -ldflags "-s -w $version" \
      -o "$out/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  (cd "$TOOLS/kube" && "$GO" build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "$out/bin/etcd" go.etcd.io/etcd/server/v3)
  {
    echo "kubernetes=$kube"
    echo "etcd=$(module_version kube go.etcd.io/etcd/server/v3)"
  } >"$out/versions"
}

build_kwok() {
  local out=$1 module
  # Its version string is the source's own default (pkg/consts.Version), so no -X stamp is needed.
  (cd "$TOOLS/kwok" && "$GO" build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "$out/bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # The stages kwokctl gives its controller by default (pkg/kwokctl/runtime/cluster.go at v0.8.0:
  # node-initialize, node heartbeat with lease, pod-ready, pod-complete, pod-delete), from this module.
  module="$(module_dir kwok sigs.k8s.io/kwok)"
  mkdir -p "$out/stages"
  cp "$module/kustomize/stage/node/fast/node-initialize.yaml" \
    "$module/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$module"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml "$out/stages/"
  chmod -R u+w "$out/stages"
  echo "kwok=$(module_version kwok sigs.k8s.io/kwok)" >"$out/versions"
}

build_controller() {
  local out=$1 c=$2
  (cd "$TOOLS/$c" && "$GO" build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "$out/bin/$c" "github.com/fluxcd/$c")
  # The CRDs come from the same module version as the controller that serves them.
  mkdir -p "$out/crds"
  cp "$(module_dir "$c" "github.com/fluxcd/$c")"/config/crd/bases/*.yaml "$out/crds/"
  chmod -R u+w "$out/crds"
  echo "$c=$(module_version "$c" "github.com/fluxcd/$c")" >"$out/versions"
}

build_one() {
  local name=$1 dir tmp start
  dir="$(component_dir "$name")"
  if [ -f "$dir/versions" ]; then
    log "$name: cached in $dir"
    return
  fi
  start=$(date +%s)
  log "$name: building into $dir (a first build on a machine takes minutes; see docs/cluster.md)"
  mkdir -p "$CACHE_ROOT"
  # Named by this script's pid, so that `build` can tell an interrupted build's leftovers (see below).
  tmp="$(mktemp -d "$CACHE_ROOT/.build.$$.XXXXXX")"
  # In its own process: `set -e` is ignored inside a function that runs on the left of `||`, and a
  # half-failed build must not be cached. Through bash, as make runs it: the file need not be executable.
  bash "$0" _build "$name" "$tmp" || {
    rm -rf "$tmp"
    die "$name: build failed (output above)"
  }
  # Another checkout may have finished the same build meanwhile (before or during the move): keep its
  # copy, which may be running.
  if [ -f "$dir/versions" ] || ! mv -T "$tmp" "$dir" 2>/dev/null; then
    rm -rf "$tmp"
    [ -f "$dir/versions" ] || die "$name: cannot move the build into $dir"
  fi
  log "$name: built in $(($(date +%s) - start))s"
}

build() {
  [ -x "$GO" ] || die "no Go toolchain at '$GO' (set GO=/path/to/go); see docs/cluster.md"
  local name start stale pid
  start=$(date +%s)
  # A build interrupted (Ctrl-C, a killed CI job) leaves its directory behind: remove those whose
  # script no longer runs. Another checkout's build in progress is left alone.
  for stale in "$CACHE_ROOT"/.build.*; do
    [ -d "$stale" ] || continue
    pid="${stale#"$CACHE_ROOT"/.build.}"
    pid="${pid%%.*}"
    # /proc, not `kill -0`: that fails with EPERM for another user's build that still runs.
    if ! [[ "$pid" =~ ^[0-9]+$ ]] || [ ! -d "/proc/$pid" ]; then
      # Leftovers only cost disk: one this user cannot remove must not stop the build.
      rm -rf "$stale" 2>/dev/null || log "cannot remove $stale (an interrupted build's); remove it by hand"
    fi
  done
  for name in "${COMPONENTS[@]}"; do build_one "$name"; done
  log "binaries ready after $(($(date +%s) - start))s"
}

# --- up ---------------------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD...: run CMD in its own session, logging to .cluster/logs/NAME.log; its pid is recorded
# so that `down` stops exactly what `up` started.
start() {
  local name=$1
  shift
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name"
}

wait_until() {
  local what=$1 seconds=$2 log=$3
  shift 3
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$STATE/pids/$what")" 2>/dev/null; then
      tail -n 30 "$log" >&2 || true
      die "$what exited (log: $log)"
    fi
    if (($(date +%s) > deadline)); then
      tail -n 30 "$log" >&2 || true
      die "$what not ready after ${seconds}s (log: $log)"
    fi
    sleep 0.5
  done
}

pki() {
  local p=$STATE/pki
  mkdir -p "$p"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=gitops-test-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  issue() { # issue NAME SUBJECT [EXTENSIONS]
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
      -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf '%s\n' "${3:-extendedKeyUsage=clientAuth}") -out "$p/$1.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" \
    "$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth')"
  # The test suite's identity: cluster-admin through the system:masters group, as `kubeadm` gives.
  issue admin "/O=system:masters/CN=gitops-test-admin"
  # The users the API server's bootstrap RBAC binds to the controller-manager's and scheduler's roles
  # (ClusterRoleBindings system:kube-controller-manager and system:kube-scheduler), as kubeadm issues.
  issue kube-controller-manager "/CN=system:kube-controller-manager"
  issue kube-scheduler "/CN=system:kube-scheduler"
  # The key the API server signs service-account tokens with (TokenRequest), and verifies them by.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$p/sa.key" 2>/dev/null
  openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub"
  chmod 600 "$p"/*.key
}

# kubeconfig FILE USER-YAML: written with shell builtins, so no credential ever appears in a process's argv.
kubeconfig() {
  local file=$1 user=$2 ca
  ca="$(base64 -w0 <"$STATE/pki/ca.crt")"
  (
    umask 077
    printf '%s\n' "apiVersion: v1" "kind: Config" "current-context: local" \
      "clusters:" "- name: local" "  cluster:" "    server: https://127.0.0.1:$API_PORT" \
      "    certificate-authority-data: $ca" \
      "contexts:" "- name: local" "  context: {cluster: local, user: user}" \
      "users:" "- name: user" "  user:" "$user" >"$file"
  )
}

kc() { KUBECONFIG="$STATE/kubeconfig" "$KUBECTL" "$@"; }

# client_kubeconfig NAME: a kubeconfig with the client certificate pki() issued to NAME.
client_kubeconfig() {
  kubeconfig "$STATE/$1.kubeconfig" "$(printf '    %s\n' \
    "client-certificate-data: $(base64 -w0 <"$STATE/pki/$1.crt")" \
    "client-key-data: $(base64 -w0 <"$STATE/pki/$1.key")")"
}

# start_rollout KUBE-DIR KWOK-DIR: kube-controller-manager, kube-scheduler and one simulated node, so a
# Deployment gets a ReplicaSet and Pods, the Pods are bound and become Ready, written by those processes.
start_rollout() {
  local kube=$1 kwok=$2 kcm_port sched_port kwok_port stage stages=()
  kcm_port=$(free_port) sched_port=$(free_port) kwok_port=$(free_port)
  client_kubeconfig kube-controller-manager
  client_kubeconfig kube-scheduler
  # Every controller runs with its own service account's token (--use-service-account-credentials,
  # as kubeadm runs it), so the ReplicaSet controller creates pods as system:serviceaccount:kube-system:
  # replicaset-controller and Pod Security judges them as on EKS. The token controller signs with the
  # key the API server verifies with and publishes our CA (kube-root-ca.crt). One instance: no leader
  # election. Its self-signed serving certificate goes under .cluster/, not /var/run/kubernetes.
  start kube-controller-manager "$kube/bin/kube-controller-manager" \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$STATE/pki/sa.key" --root-ca-file="$STATE/pki/ca.crt" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$kcm_port" \
    --cert-dir="$STATE/pki/kube-controller-manager" --profiling=false
  start kube-scheduler "$kube/bin/kube-scheduler" \
    --kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$sched_port" \
    --cert-dir="$STATE/pki/kube-scheduler" --profiling=false
  # The node, as KWOK's "Create a Node" (site/content/en/docs/user/kwok-manage-nodes-and-pods.md at
  # v0.8.0) declares it, without the NoSchedule taint that keeps other pods off it: every pod runs here.
  kc apply --server-side -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    type: kwok
NODE
  # KWOK in place of the node's kubelet: it writes the node's status and renews its Lease (40 s, the
  # kubelet's default), and moves each pod bound to it through the stages build_kwok copied (Running
  # and Ready at once; a deleted pod is removed). It acts as the suite's admin, which no test is about.
  # Its work directory is ours: it would also load a ~/.kwok/kwok.yaml of this user (pkg/config).
  for stage in "$kwok"/stages/*.yaml; do stages+=(--config="$stage"); done
  start kwok env KWOK_WORKDIR="$STATE/kwok" "$kwok/bin/kwok" --kubeconfig="$STATE/kubeconfig" "${stages[@]}" \
    --manage-all-nodes=true --node-lease-duration-seconds=40 --server-address="127.0.0.1:$kwok_port"
  wait_until kube-controller-manager 60 "$STATE/logs/kube-controller-manager.log" \
    curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  wait_until kube-scheduler 60 "$STATE/logs/kube-scheduler.log" curl -fsSk "https://127.0.0.1:$sched_port/healthz"
  wait_until kwok 60 "$STATE/logs/kwok.log" curl -fsS "http://127.0.0.1:$kwok_port/healthz"
  wait_until kwok 60 "$STATE/logs/kwok.log" kc wait --for=condition=Ready --timeout=1s "node/$NODE_NAME"
  # Ready, and the node lifecycle controller has removed the not-ready taint the API server put on the
  # new Node (TaintNodesByCondition): until then every pod would stay Pending.
  wait_until kube-controller-manager 60 "$STATE/logs/kube-controller-manager.log" untainted
}

untainted() { [ -z "$(kc get node "$NODE_NAME" -o jsonpath='{.spec.taints}')" ]; }

up() {
  if status >/dev/null 2>&1; then
    log "already up ($STATE/kubeconfig)"
    return
  fi
  [ ! -d "$STATE/pids" ] || down
  [ -x "$PYTHON" ] || die "no Python at '$PYTHON' for Flux's flags and RBAC (run make venv, or set PYTHON=)"
  build
  local kube c start_time
  # Each component's cache entry, computed once (the key hashes go.mod/go.sum and asks `go env`).
  declare -A dir
  for c in "${COMPONENTS[@]}"; do dir[$c]="$(component_dir "$c")"; done
  kube="${dir[kube]}"
  start_time=$(date +%s)
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/artifacts"
  # Which binaries `down` may stop: those under this cache root, even if `down` runs with another one.
  readlink -f "$CACHE_ROOT" >"$STATE/cache"
  # A start that fails half-way stops what it started; its logs are kept in .cluster-failed/.
  trap 'rm -rf "$STATE-failed"; cp -r "$STATE/logs" "$STATE-failed"; down' EXIT
  ETCD_PORT=$(free_port) ETCD_PEER_PORT=$(free_port) API_PORT=$(free_port)
  EVENTS_PORT=$(free_port) RECEIVER_PORT=$(free_port)
  pki

  # Test data only: fsync off makes etcd fast on a shared disk and loses nothing a test needs.
  start etcd "$kube/bin/etcd" --name default --data-dir "$STATE/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_until etcd 60 "$STATE/logs/etcd.log" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  # --allow-privileged=true as on EKS, so a privileged pod is refused by Pod Security, not by this flag.
  start kube-apiserver "$kube/bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --authorization-mode=RBAC --anonymous-auth=false \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,LimitRanger,ResourceQuota \
    --allow-privileged=true \
    --service-account-issuer="https://127.0.0.1:$API_PORT" \
    --service-account-key-file="$STATE/pki/sa.pub" \
    --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none --profiling=false
  kubeconfig "$STATE/kubeconfig" "$(printf '    %s\n' \
    "client-certificate-data: $(base64 -w0 <"$STATE/pki/admin.crt")" \
    "client-key-data: $(base64 -w0 <"$STATE/pki/admin.key")")"
  wait_until kube-apiserver 120 "$STATE/logs/kube-apiserver.log" kc get --raw /readyz

  for c in "${CONTROLLERS[@]}"; do kc apply --server-side -f "${dir[$c]}/crds/" >/dev/null; done
  # Flux's identities and the RBAC production's Flux Operator installs for the stack's FluxInstance,
  # read from the operator's source at the pinned chart version (plane/fluxchart.py).
  local rbac
  rbac="$(cd "$ROOT" && GO="$GO" "$PYTHON" -m plane.fluxchart rbac)" || die "cannot derive Flux's RBAC"
  kc apply --server-side -f - <<<"$rbac" >/dev/null
  kc wait --for=condition=Established --timeout=60s crd --all >/dev/null

  start_rollout "$kube" "${dir[kwok]}"

  local health port token flags chart_args
  for c in "${CONTROLLERS[@]}"; do
    # Each controller authenticates as its own service account, with a token the API server signed.
    token="$(kc create token "$c" -n "$NAMESPACE" --duration=48h)"
    kubeconfig "$STATE/$c.kubeconfig" "    token: $token"
    health=$(free_port)
    local args=(--watch-all-namespaces=true --enable-leader-election=false --metrics-addr=0
      --health-addr="127.0.0.1:$health" --log-level=info --log-encoding=json)
    # The flags the stack's FluxInstance gives this controller (multi-tenancy lockdown, no remote
    # bases), derived from the operator's source so the test cluster cannot drift from EKS.
    flags="$(cd "$ROOT" && GO="$GO" "$PYTHON" -m plane.fluxchart "$c")" || die "cannot derive $c's flags"
    chart_args=()
    [ -z "$flags" ] || mapfile -t chart_args <<<"$flags"
    args+=("${chart_args[@]}")
    case "$c" in
      source-controller)
        port=$(free_port)
        STORAGE_PORT=$port
        args+=(--storage-path="$STATE/artifacts" --storage-addr="127.0.0.1:$port"
          --storage-adv-addr="127.0.0.1:$port")
        ;;
      notification-controller)
        # The events endpoint the other controllers post to, and the webhook receiver (GitHub's side
        # of the Receiver Service on EKS).
        args+=(--events-addr="127.0.0.1:$EVENTS_PORT" --receiverAddr="127.0.0.1:$RECEIVER_PORT")
        ;;
    esac
    # The chart points the other controllers at notification-controller's Service; here, its port.
    [ "$c" = notification-controller ] || args+=(--events-addr="http://127.0.0.1:$EVENTS_PORT/")
    start "$c" env KUBECONFIG="$STATE/$c.kubeconfig" RUNTIME_NAMESPACE="$NAMESPACE" \
      "${dir[$c]}/bin/$c" "${args[@]}"
    printf -v "HEALTH_${c//-/_}" '%s' "$health"
  done
  for c in "${CONTROLLERS[@]}"; do
    local h="HEALTH_${c//-/_}"
    wait_until "$c" 60 "$STATE/logs/$c.log" curl -fsS "http://127.0.0.1:${!h}/readyz"
  done

  {
    echo "API_PORT=$API_PORT"
    echo "ETCD_PORT=$ETCD_PORT"
    echo "STORAGE_PORT=$STORAGE_PORT"
    echo "EVENTS_PORT=$EVENTS_PORT"
    echo "RECEIVER_PORT=$RECEIVER_PORT"
    echo "NAMESPACE=$NAMESPACE"
    echo "CACHE=$CACHE_ROOT"
    for c in "${COMPONENTS[@]}"; do cat "${dir[$c]}/versions"; done
  } >"$STATE/env"
  trap - EXIT
  log "up in $(($(date +%s) - start_time))s: export KUBECONFIG=$STATE/kubeconfig"
}

# --- down / status ----------------------------------------------------------------------------------

down() {
  [ -d "$STATE/pids" ] || {
    log "not running"
    rm -rf "$STATE"
    return
  }
  local f pid name cache="$CACHE_ROOT"
  [ ! -f "$STATE/cache" ] || cache="$(cat "$STATE/cache")"
  cache="$(readlink -f "$cache")"
  # Controllers first, the API server next, its storage last.
  for name in "${CONTROLLERS[@]}" "${KUBE_CONTROLLERS[@]}" kube-apiserver etcd; do
    f="$STATE/pids/$name"
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    # A pid left by a crashed run may have been reused: stop it only while it still runs our binary.
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      "$cache"/*)
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.25
        done
        kill -KILL "$pid" 2>/dev/null || true
        ;;
      *) log "$name (pid $pid) is not running" ;;
    esac
    rm -f "$f"
  done
  rm -rf "$STATE"
  log "down"
}

status() {
  local name
  for name in etcd kube-apiserver "${KUBE_CONTROLLERS[@]}" "${CONTROLLERS[@]}"; do
    [ -f "$STATE/pids/$name" ] && kill -0 "$(cat "$STATE/pids/$name")" 2>/dev/null || return 1
  done
  kc get --raw /readyz >/dev/null 2>&1
}

# run CMD...: CMD's exit status, with the control plane up while it runs. A plane that was already up is
# reused and left running; one started here is stopped however CMD ends (failure, Ctrl-C, a killed job).
run_with() {
  [ "$#" -gt 0 ] || die "usage: $0 run CMD [ARGS...]"
  if status >/dev/null 2>&1; then
    log "reusing the control plane that is up ($STATE/kubeconfig); it stays up"
    "$@"
    return
  fi
  up
  trap down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$@"
}

case "${1:-}" in
  build) build ;;
  _build) "$(builder "$2")" "$3" "$2" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  run)
    shift
    run_with "$@"
    ;;
  *) die "usage: $0 build|up|down|status|run CMD..." ;;
esac
