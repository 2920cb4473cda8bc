#!/usr/bin/env bash
# The Tether lab: VMs-to-be on this machine. Each VM is a network namespace with its own address
# on a veth pair, running OpenSSH's sshd (key-only, stream-local forwarding allowed) and its own
# Docker Engine (dockerd from Debian's docker.io). Needs root. Talks to no address outside the
# namespaces it creates.
#
#   lab.sh install                 install the Debian packages the lab needs
#   lab.sh up                      start VMs "a" (arm64 label) and "b" (x86_64 label)
#   lab.sh down                    stop everything and remove all lab state
#   lab.sh env                     print the lab's variables (for tests)
#   lab.sh vm-up NAME IDX [docker] [files]
#                                  start one more VM at 10.77.IDX.2 (docker: with its own engine;
#                                  files: its sshd and dockerd in a mount namespace of their own,
#                                  where the laptop's test folders ($LAPTOP) are an empty tmpfs)
#   lab.sh vm-down NAME            stop and remove one VM
#   lab.sh hidden NAME IDX BASTION [docker]
#                                  a VM at 10.78.IDX.2 wired only to VM BASTION (at 10.78.IDX.1
#                                  there); this machine has no route to it, only through BASTION
#   lab.sh sshd NAME PORT [OPT=VAL ...]  start another sshd in VM NAME on PORT with extra options
#   lab.sh sshd-stop NAME PORT     stop that sshd
#   lab.sh dockerd-start NAME | dockerd-stop NAME
#   lab.sh link NAME up|down       cut or restore the VM's link
#   lab.sh move NAME               the VM moves to 10.77.IDX.3 (its sshd follows, its old address goes)
#                                  and the laptop's end of the link gets a new address too, as when
#                                  a laptop joins another network
#   lab.sh web NAME PORT           serve the lab's hello page on the VM's 127.0.0.1:PORT
#   lab.sh kube NAME PORT          a stand-in Kubernetes API server on the VM's 127.0.0.1:PORT (TLS,
#                                  client certificates; its certificate names api.lab.internal
#                                  only) and a kubeconfig for it at $LAB/vms/NAME/kube/kubeconfig
#   lab.sh blackhole NAME on|off   the VM silently drops every TCP packet it receives (a hung VM, a
#                                  firewall that drops): no FIN, no RST, no ICMP
#   lab.sh tarpit NAME PORT        on the VM's address: accept TCP and never say a word
#   lab.sh counter NAME PORT       on the VM's PORT: read to EOF, then answer "got N bytes"
#   lab.sh source NAME PORT        on the VM's 127.0.0.1:PORT: send random bytes until the reader
#                                  closes (the benchmark's raw stream)
#   lab.sh image NAME IMAGE MIB    an image of MIB MiB of random bytes in VM NAME's engine
#   lab.sh isolated NAME           a namespace with loopback only (for tests that must not resolve)
#   lab.sh user NAME [SIZE]        a login user with password "lab-password", a home of its own
#                                  (on a tmpfs of SIZE, e.g. 64k, if given)
#                                  (keys in ~/.ssh/authorized_keys) and the docker group
#   lab.sh user-rm NAME            remove that user and its home
set -euo pipefail

LAB=${TETHER_LAB_DIR:-/run/tether-lab}
DATA=${TETHER_LAB_DATA:-/var/lib/tether-lab}
USER_OK=tlab
USER_NODOCKER=tlab-nodocker
GROUP_DOCKER=tlab-docker
IMAGE=tether-lab/busybox
BIG_IMAGE=tether-lab/big
HUGE_IMAGE=tether-lab/huge
MEDIUM_IMAGE=tether-lab/medium
PASSWORD=lab-password
# The laptop's folders for tests about files. The lab's VMs share this machine's file system, so
# a VM's dockerd would serve a bind mount of a laptop path with no sync at all; a VM started
# with `files` sees an empty tmpfs here instead.
LAPTOP=${TETHER_LAB_LAPTOP:-/var/lib/tether-laptop}

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, sshd, dockerd)"; }

# Whether Debian package $1 is installed: `dpkg -s` also succeeds for a removed package whose
# configuration files remain, which is not installed.
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

install() {
  need_root
  local pkgs=(openssh-server openssh-client docker.io busybox-static iproute2 iptables curl psmisc procps openssl inotify-tools docker-compose rsync)
  local missing=()
  for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # kubectl for the Kubernetes test: Debian's, unless one is installed already (another
  # package's kubectl would conflict with it).
  if ! command -v kubectl >/dev/null 2>&1; then
    log "installing kubernetes-client (kubectl)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
  fi
  compose_v2
  # Debian starts services on install where it can; the lab runs its own instances only.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop docker.socket docker.service ssh.service >/dev/null 2>&1 || true
  fi
}

# Compose v2 (for `docker compose watch`): bookworm has only Compose 1, so the next Debian
# release's package is fetched, checked against its pinned digest, and unpacked beside the lab's
# tools (not installed: the machine's own `docker-compose` stays Compose 1).
COMPOSE2_DEB=docker-compose_2.26.1-4_amd64.deb
COMPOSE2_SHA256=47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea
COMPOSE2=/usr/local/lib/tether-lab/docker-compose-v2
compose_v2() {
  [ -x "$COMPOSE2" ] && return 0
  [ "$(uname -m)" = x86_64 ] || { log "Compose v2 is fetched for x86_64 only: skipped"; return 0; }
  local tmp; tmp=$(mktemp -d)
  log "fetching Compose v2 ($COMPOSE2_DEB, Debian trixie)"
  curl -fsS --retry 3 -o "$tmp/$COMPOSE2_DEB" "http://deb.debian.org/debian/pool/main/d/docker-compose/$COMPOSE2_DEB" ||
    die "could not download $COMPOSE2_DEB from deb.debian.org; if trixie has a newer one, update COMPOSE2_DEB and COMPOSE2_SHA256 in lab.sh"
  echo "$COMPOSE2_SHA256  $tmp/$COMPOSE2_DEB" | sha256sum -c --quiet - ||
    die "$COMPOSE2_DEB does not match its pinned digest: refusing it"
  dpkg-deb -x "$tmp/$COMPOSE2_DEB" "$tmp/x"
  mkdir -p "$(dirname "$COMPOSE2")"
  install -m 755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$COMPOSE2"
  rm -rf "$tmp"
}

ensure_users() {
  getent group "$GROUP_DOCKER" >/dev/null || groupadd --system "$GROUP_DOCKER"
  id "$USER_OK" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh --groups "$GROUP_DOCKER" "$USER_OK"
  id "$USER_NODOCKER" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NODOCKER"
  # OpenSSH refuses to log in to a locked account; '*' means "no password" yet not locked.
  usermod -p '*' "$USER_OK"; usermod -p '*' "$USER_NODOCKER"
}

ensure_keys() {
  mkdir -p "$LAB/keys" "$LAB/authorized_keys"
  chmod 755 "$LAB" "$LAB/authorized_keys"
  if [ ! -f "$LAB/keys/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C tether-lab -f "$LAB/keys/id_ed25519"
    ssh-keygen -q -t ed25519 -N 'lab-passphrase' -C tether-lab-enc -f "$LAB/keys/id_encrypted"
    ssh-keygen -q -t ed25519 -N '' -C tether-lab-stranger -f "$LAB/keys/id_stranger"
  fi
  for u in "$USER_OK" "$USER_NODOCKER"; do
    cat "$LAB/keys/id_ed25519.pub" "$LAB/keys/id_encrypted.pub" > "$LAB/authorized_keys/$u"
    chmod 644 "$LAB/authorized_keys/$u"
  done
}

vm_dir() { echo "$LAB/vms/$1"; }

user_add() { # NAME [SIZE]
  local name=$1 size=${2:-}
  [[ $name =~ ^tl[a-z0-9]{1,12}$ ]] || die "lab user names look like tlNAME (lowercase, short)"
  user_rm "$name"
  mkdir -p "$DATA/homes"
  useradd -m -d "$DATA/homes/$name" -s /bin/sh -G "$GROUP_DOCKER" "$name"
  if [ -n "$size" ]; then
    # A home on a tmpfs of its own, which a test can fill to the last page.
    [[ $size =~ ^[0-9]+k$ ]] || die "a home size looks like 64k"
    mount -t tmpfs -o "size=$size,mode=755,uid=$(id -u "$name"),gid=$(id -g "$name")" "tl-home-$name" "$DATA/homes/$name"
  fi
  echo "$name:$PASSWORD" | chpasswd
  echo "$name" >> "$LAB/users"
}

user_rm() { # NAME
  local name=$1
  if id "$name" >/dev/null 2>&1; then
    pkill -u "$name" 2>/dev/null || true
    if mountpoint -q "$DATA/homes/$name"; then umount -l "$DATA/homes/$name"; fi
    userdel -r "$name" >/dev/null 2>&1 || userdel "$name" || true
  fi
  rm -rf "${DATA:?}/homes/$name"
}

sshd_start() { # NAME PORT [OPT=VAL ...]
  local name=$1 port=$2; shift 2
  local dir; dir=$(vm_dir "$name")
  local ip; ip=$(cat "$dir/ip")
  mkdir -p /run/sshd && chmod 755 /run/sshd
  # HostKeyType=ecdsa (not an sshd keyword) serves only an ECDSA host key, as a man in the
  # middle who cannot present the VM's ed25519 key would.
  local keytype=ed25519 opts=()
  for o in "$@"; do
    case $o in HostKeyType=*) keytype=${o#*=} ;; *) opts+=("$o") ;; esac
  done
  [ -f "$dir/ssh_host_${keytype}_key" ] || ssh-keygen -q -t "$keytype" -N '' -f "$dir/ssh_host_${keytype}_key"
  local cfg="$dir/sshd_$port.conf"
  {
    # Options given on the command line come first: the first value of a keyword wins.
    for o in "${opts[@]}"; do echo "${o%%=*} ${o#*=}"; done
    echo "ListenAddress $ip"
    echo "Port $port"
    echo "HostKey $dir/ssh_host_${keytype}_key"
    echo "PidFile $dir/sshd_$port.pid"
    echo "AuthorizedKeysFile $LAB/authorized_keys/%u"
    echo "StrictModes no"
    echo "UsePAM no"
    echo "PubkeyAuthentication yes"
    echo "PermitRootLogin no"
    echo "MaxSessions 64"
    echo "MaxStartups 64:30:128"
    echo "LogLevel VERBOSE"
    echo "SetEnv DOCKER_HOST=unix://$dir/docker.sock"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "AllowStreamLocalForwarding yes"
    echo "AllowTcpForwarding yes"
  } > "$cfg"
  in_vm "$name" /usr/sbin/sshd -f "$cfg" -E "$dir/sshd_$port.log"
  wait_for "sshd $name:$port" 10 "ip netns exec tl-$name bash -c 'exec 3<>/dev/tcp/$ip/$port' 2>/dev/null"
}

sshd_stop() { # NAME PORT
  local f; f="$(vm_dir "$1")/sshd_$2.pid"
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  rm -f "$f"
}

wait_for() { # LABEL SECONDS COMMAND
  local label=$1 secs=$2 cmd=$3 i=0
  while ! eval "$cmd" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt $((secs * 20)) ] && die "$label did not come up within ${secs}s"
    sleep 0.05
  done
}

dockerd_start() { # NAME
  local name=$1 dir; dir=$(vm_dir "$1")
  mkdir -p "$DATA/$name" "$dir/exec"
  chmod 755 "$dir"
  in_vm "$name" dockerd \
    --data-root "$DATA/$name" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" --group "$GROUP_DOCKER" \
    --storage-driver vfs --iptables=false --ip6tables=false --userland-proxy=true \
    >"$dir/dockerd.log" 2>&1 &
  wait_for "dockerd $name" 60 "docker -H unix://$dir/docker.sock version"
}

dockerd_stop() { # NAME
  local dir; dir=$(vm_dir "$1")
  if [ -f "$dir/docker.pid" ]; then
    local pid; pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/docker.pid"
}

# While a VM's link is cut its /24 route is gone; without this, packets for it would follow the
# default route off the machine. An unreachable route keeps every lab address local.
# Hidden VMs (10.78/16) sit behind a bastion and must never be reachable from here, nor leak.
guard_route() {
  ip route replace unreachable 10.77.0.0/16 metric 4000
  ip route replace unreachable 10.78.0.0/16 metric 4000
}

# A VM: namespace tl-NAME, its end of a veth pair at NET.IDX.2/24, the other end (OUTER_IF, at
# NET.IDX.1) in namespace OUTER_NS (empty: this machine's); then its sshd, and its dockerd if asked.
# Runs a command in VM NAME's network namespace and, for a VM started with `files`, its mount
# namespace. nsenter joins only those: `ip netns exec` would remount /sys and hide the cgroup
# hierarchy dockerd needs.
in_vm() { # NAME COMMAND...
  local name=$1; shift
  local mnt=()
  [ -e "$LAB/mnt/$name" ] && mountpoint -q "$LAB/mnt/$name" && mnt=(--mount="$LAB/mnt/$name")
  nsenter --net="/run/netns/tl-$name" "${mnt[@]}" "$@"
}

# A mount namespace of VM NAME's own, kept in $LAB/mnt/NAME (a bind mount of the namespace,
# on a private mount so it does not propagate): a copy of this machine's mounts with an empty
# tmpfs over $LAPTOP.
mount_ns_make() { # NAME
  mkdir -p "$LAB/mnt" "$LAPTOP"
  chmod 755 "$LAPTOP"
  if ! mountpoint -q "$LAB/mnt"; then
    mount --bind "$LAB/mnt" "$LAB/mnt"
    mount --make-private "$LAB/mnt"
  fi
  touch "$LAB/mnt/$1"
  unshare --mount="$LAB/mnt/$1" --propagation private mount -t tmpfs -o size=64m,mode=0755 tmpfs "$LAPTOP"
}

mount_ns_drop() { # NAME
  if [ -e "$LAB/mnt/$1" ]; then
    umount "$LAB/mnt/$1" 2>/dev/null || umount -l "$LAB/mnt/$1" 2>/dev/null || true
    rm -f "$LAB/mnt/$1"
  fi
}

vm_make() { # NAME NET IDX OUTER_NS OUTER_IF [docker] [files]
  local name=$1 net=$2 idx=$3 outer=$4 outer_if=$5 with_docker=${6:-} files=${7:-}
  local dir; dir=$(vm_dir "$name")
  mkdir -p "$dir"; chmod 755 "$LAB" "$LAB/vms" "$dir"
  local ns="tl-$name" vm_if="tlv-$name"
  ip netns add "$ns"
  ip link add "$outer_if" type veth peer name "$vm_if"
  ip link set "$vm_if" netns "$ns"
  local out=(ip)
  if [ -n "$outer" ]; then ip link set "$outer_if" netns "$outer"; out=(ip -n "$outer"); fi
  "${out[@]}" addr add "$net.$idx.1/24" dev "$outer_if"
  "${out[@]}" link set "$outer_if" up
  ip -n "$ns" addr add "$net.$idx.2/24" dev "$vm_if"
  ip -n "$ns" link set "$vm_if" up
  ip -n "$ns" link set lo up
  echo "$net.$idx.2" > "$dir/ip"
  if [ "$files" = files ] || [ "$with_docker" = files ]; then mount_ns_make "$name"; fi
  sshd_start "$name" 22
  if [ "$with_docker" = docker ]; then dockerd_start "$name"; fi
}

vm_up() { # NAME IDX [docker] [files]
  need_root
  guard_route
  vm_make "$1" 10.77 "$2" "" "tlh-$1" "${3:-}" "${4:-}"
  log "VM $1 up at 10.77.$2.2"
}

vm_hidden() { # NAME IDX BASTION [docker]
  need_root
  guard_route
  [ -d "$(vm_dir "$3")" ] || die "no VM '$3' to hide '$1' behind: start it with vm-up first"
  vm_make "$1" 10.78 "$2" "tl-$3" "tlj-$1" "${4:-}"
  log "VM $1 up at 10.78.$2.2, reachable only through $3"
}

tarpit() { # NAME PORT
  local dir ip; dir=$(vm_dir "$1"); ip=$(cat "$dir/ip")
  ip netns exec "tl-$1" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
held = []
while True:
    held.append(s.accept()[0])
' "$ip" "$2" >/dev/null 2>&1 &
  wait_for "tarpit $1:$2" 10 "ip netns exec tl-$1 bash -c 'exec 3<>/dev/tcp/$ip/$2' 2>/dev/null"
}

kube_api() { # NAME PORT
  local name=$1 port=$2 dir; dir="$(vm_dir "$1")/kube"
  mkdir -p "$dir"; chmod 755 "$dir"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 7 -subj /CN=tether-lab-ca 2>/dev/null
  openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=DNS:api.lab.internal\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.crt" -days 7 -extfile "$dir/server.ext" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$dir/client.key" -out "$dir/client.csr" -subj "/O=system:masters/CN=tether-lab-admin" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$dir/client.ext"
  openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/client.crt" -days 7 -extfile "$dir/client.ext" 2>/dev/null
  b64() { base64 -w0 < "$1"; }
  cat > "$dir/kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://api.lab.internal:$port
    certificate-authority-data: $(b64 "$dir/ca.crt")
users:
- name: lab-admin
  user:
    client-certificate-data: $(b64 "$dir/client.crt")
    client-key-data: $(b64 "$dir/client.key")
contexts:
- name: lab
  context:
    cluster: lab
    user: lab-admin
current-context: lab
EOK
  # The VM's login user reads it, as kubectl on the VM would.
  chmod 644 "$dir/kubeconfig"
  : > "$dir/requests.log"; chmod 644 "$dir/requests.log"
  ip netns exec "tl-$name" python3 "$(dirname "$0")/kubeapi.py" "$dir" "$port" </dev/null >"$dir/server.log" 2>&1 &
  wait_for "kube api $name:$port" 10 "ip netns exec tl-$name bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port'"
}

vm_move() { # NAME
  local name=$1 dir; dir=$(vm_dir "$1")
  local ns="tl-$name" old new idx
  old=$(cat "$dir/ip"); idx=$(echo "$old" | cut -d. -f3)
  new="10.77.$idx.3"
  # Else removing the old (primary) address would take the new (secondary) one with it.
  ip netns exec "$ns" sysctl -qw "net.ipv4.conf.tlv-$name.promote_secondaries=1"
  ip -n "$ns" addr add "$new/24" dev "tlv-$name"
  echo "$new" > "$dir/ip"
  sshd_start "$name" 22
  ip -n "$ns" addr del "$old/24" dev "tlv-$name"
  ip addr add "10.77.$idx.5/24" dev "tlh-$name"
  log "VM $name moved from $old to $new"
}

vm_down() { # NAME
  local name=$1 dir; dir=$(vm_dir "$1")
  [ -d "$dir" ] || return 0
  for pidf in "$dir"/sshd_*.pid; do [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null || true; done
  dockerd_stop "$name"
  # Anything still running inside the namespace (containers' shims, docker-proxy) goes too.
  if ip netns list | grep -qw "tl-$name"; then
    for pid in $(ip netns pids "tl-$name" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "tl-$name" 2>/dev/null || true
  fi
  ip link del "tlh-$name" 2>/dev/null || true
  mount_ns_drop "$name"
  unmount_under "$dir"
  rm -rf "$dir"
}

unmount_under() { # DIR: whatever a killed dockerd left mounted at or under DIR (its data root's
  # private bind mount, containers' netns files), deepest first.
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

make_images() { # NAME
  local sock; sock="unix://$(vm_dir "$1")/docker.sock"
  local root="$LAB/rootfs"
  if [ ! -f "$LAB/busybox.tar" ]; then
    rm -rf "$root"; mkdir -p "$root/bin" "$root/www" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for app in sh ls cat echo sleep httpd head wc dd nc yes; do ln -sf busybox "$root/bin/$app"; done
    # A real inotify watcher, as a dev server's (Debian's busybox has no inotifyd): the shared
    # folders' tests watch a mount from inside a container with it.
    cp /usr/bin/inotifywait "$root/bin/inotifywait"
    ldd /usr/bin/inotifywait | grep -o '/[^ ]*' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
    done
    echo "hello from the tether lab" > "$root/www/index.html"
    tar -C "$root" -cf "$LAB/busybox.tar" .
  fi
  docker -H "$sock" image inspect "$IMAGE" >/dev/null 2>&1 ||
    docker -H "$sock" import --change 'CMD ["/bin/sh"]' "$LAB/busybox.tar" "$IMAGE" >/dev/null
}

make_big_image() { # VM IMAGE MIB: one layer of random bytes, so nothing on the way compresses it
  local sock; sock="unix://$(vm_dir "$1")/docker.sock"
  docker -H "$sock" image inspect "$2" >/dev/null 2>&1 && return 0
  local root="$LAB/bigroot"
  rm -rf "$root"; mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  head -c $(($3 * 1024 * 1024)) /dev/urandom > "$root/blob"
  tar -C "$root" -cf - . | docker -H "$sock" import - "$2" >/dev/null
  rm -rf "$root"
}

up() {
  need_root
  down_quiet
  # Test ports claimed by an earlier run (tests/e2e's free_port) are free again.
  rm -rf "$LAB/ports"
  ensure_users
  ensure_keys
  vm_up a 1 docker
  vm_up b 2 docker
  make_images a
  make_images b
  make_big_image a "$BIG_IMAGE" 272
  # For many stalled readers at once: each reader's image well past its window.
  make_big_image a "$MEDIUM_IMAGE" 48
  # tether-lab/huge (1088 MiB, `docker save` of over 1 GiB into a slow reader) is made by the test
  # that wants it, at full size only (TETHER_E2E_FULL=1, tests/soak.sh).
  log "lab up: a=10.77.1.2 (arm64 label), b=10.77.2.2 (x86_64 label)"
}

down_quiet() {
  for d in "$LAB"/vms/*; do [ -d "$d" ] && vm_down "$(basename "$d")"; done
  if [ -f "$LAB/users" ]; then
    for u in $(sort -u "$LAB/users"); do user_rm "$u"; done
    rm -f "$LAB/users"
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^tl-' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  return 0
}

down() {
  need_root
  down_quiet
  ip route del unreachable 10.77.0.0/16 metric 4000 2>/dev/null || true
  ip route del unreachable 10.78.0.0/16 metric 4000 2>/dev/null || true
  unmount_under "$LAB"
  unmount_under "$DATA"
  rm -rf "$LAB" "$DATA"
  log "lab down"
}

env_vars() {
  cat <<EOV
TETHER_LAB_DIR=$LAB
LAB_LAPTOP=$LAPTOP
LAB_KEY=$LAB/keys/id_ed25519
LAB_KEY_ENCRYPTED=$LAB/keys/id_encrypted
LAB_KEY_PASSPHRASE=lab-passphrase
LAB_KEY_STRANGER=$LAB/keys/id_stranger
LAB_USER=$USER_OK
LAB_USER_NODOCKER=$USER_NODOCKER
LAB_A_IP=10.77.1.2
LAB_B_IP=10.77.2.2
LAB_A_SOCK=$LAB/vms/a/docker.sock
LAB_B_SOCK=$LAB/vms/b/docker.sock
LAB_IMAGE=$IMAGE
LAB_BIG_IMAGE=$BIG_IMAGE
LAB_HUGE_IMAGE=$HUGE_IMAGE
LAB_MEDIUM_IMAGE=$MEDIUM_IMAGE
LAB_PASSWORD=$PASSWORD
LAB_COMPOSE2=$COMPOSE2
EOV
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  up) up ;;
  down) down ;;
  env) env_vars ;;
  vm-up) vm_up "$@" ;;
  vm-down) vm_down "$@" ;;
  hidden) vm_hidden "$@" ;;
  kube) kube_api "$@" ;;
  blackhole)
    case "${2:-}" in
      on) ip netns exec "tl-$1" iptables -I INPUT -p tcp -j DROP ;;
      off) ip netns exec "tl-$1" iptables -D INPUT -p tcp -j DROP ;;
      *) die "usage: lab.sh blackhole NAME on|off" ;;
    esac ;;
  move) vm_move "$@" ;;
  tarpit) tarpit "$@" ;;
  sshd) sshd_start "$@" ;;
  sshd-stop) sshd_stop "$@" ;;
  dockerd-start) dockerd_start "$@" ;;
  dockerd-stop) dockerd_stop "$@" ;;
  images) make_images "$@" ;;
  image) make_big_image "$@" ;;
  source)
    if ! ip netns exec "tl-$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null; then
      # One 1 MiB random block, sent over and over: nothing on the way can compress it.
      ip netns exec "tl-$1" python3 -c '
import os, socket, sys, threading
block = os.urandom(1 << 20)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
def send(c):
    try:
        while True:
            c.sendall(block)
    except OSError:
        c.close()
while True:
    threading.Thread(target=send, args=(s.accept()[0],), daemon=True).start()
' "$2" </dev/null >/dev/null 2>&1 &
      wait_for "source $1:$2" 10 "ip netns exec tl-$1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$2'"
    fi ;;
  counter)
    printf '#!/bin/sh\nn=$(wc -c)\necho "got $n bytes"\n' > "$LAB/count.sh"; chmod 755 "$LAB/count.sh"
    if ! ip netns exec "tl-$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null; then
      ip netns exec "tl-$1" busybox nc -ll -p "$2" -e "$LAB/count.sh" </dev/null >/dev/null 2>&1 &
      wait_for "counter $1:$2" 10 "ip netns exec tl-$1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$2'"
    fi ;;
  user) need_root; user_add "$@" ;;
  user-rm) need_root; user_rm "$@" ;;
  isolated)
    ip netns del "tl-$1" 2>/dev/null || true
    ip netns add "tl-$1" && ip -n "tl-$1" link set lo up ;;
  web)
    mkdir -p "$LAB/www"; echo "hello from the tether lab" > "$LAB/www/index.html"
    ip netns exec "tl-$1" busybox httpd -p "127.0.0.1:$2" -h "$LAB/www"
    wait_for "web $1:$2" 10 "ip netns exec tl-$1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$2'" ;;
  link)
    [ "${2:-}" = up ] || [ "${2:-}" = down ] || die "usage: lab.sh link NAME up|down"
    ip link set "tlh-$1" "$2" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
