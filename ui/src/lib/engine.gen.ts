// Generated from tether-core's wire types by crates/tether-core/tests/typescript.rs; do not edit.
// After changing a type: TETHER_BLESS=1 cargo test -p tether-core --test typescript

/**
 * Where a VM's session stands.
 */
export type State = { "state": "disconnected" } | { "state": "connecting" } | { "state": "connected" } | { "state": "degraded" } | { "state": "reconnecting", attempt: number, } | { "state": "failed" };

/**
 * CPU architecture label of a VM, so users can pick the arm64 or x86_64 one.
 */
export type Arch = "arm64" | "x86_64";

/**
 * What the engine said about itself, or why it could not be asked.
 */
export type EngineInfo = { ok: boolean, version?: string | null, api_version?: string | null, os?: string | null, arch?: string | null, error?: string | null, };

/**
 * Counters of the channels a VM's Docker socket opens ahead of demand.
 */
export type PoolView = { 
/**
 * Open and waiting for a connection now.
 */
ready: number, 
/**
 * Connections that started on a pooled channel.
 */
hits: number, 
/**
 * Connections that opened their own channel.
 */
misses: number, 
/**
 * Pooled channels the VM had closed (a dockerd restart), dropped unused.
 */
stale: number, 
/**
 * Pings answered on the laptop with the engine's own answer (`settings.docker_ping_cache`).
 */
pings_answered: number, 
/**
 * Whether the engine's ping answer is known and current now.
 */
ping_learned: boolean, 
/**
 * Times a known answer was dropped: the engine restarted, reloaded or went away.
 */
ping_forgotten: number, };

/**
 * Whether a tunnel's local port is taking connections.
 */
export type ForwardState = "listening" | "failed" | "idle" | "pending";

/**
 * One tunnel's state for status output.
 */
export type ForwardStatus = { local: number, remote: number, state: ForwardState, error?: string | null, active: number, total: number, 
/**
 * Connections turned away for being over `settings.max_streams`.
 */
refused?: number, 
/**
 * Made for a container's published port, not by the user.
 */
auto?: boolean, 
/**
 * The container an automatic forward serves.
 */
container?: string | null, };

/**
 * One reverse tunnel's state: the VM's port `remote` (on its loopback) carried to this laptop's
 * port `local`.
 */
export type ReverseStatus = { remote: number, local: number, 
/**
 * `listening` once the VM's sshd listens; `idle` while the VM is not connected.
 */
state: ForwardState, 
/**
 * The address the user asked for instead of the VM's loopback: `docker` or an IP.
 */
bind?: string | null, 
/**
 * Where the VM listens now (its loopback, or the bind resolved), while listening.
 */
address?: string | null, error?: string | null, active: number, total: number, };

/**
 * A VM's Kubernetes API as kubectl reaches it.
 */
export type KubeView = { vm: string, 
/**
 * The kubeconfig context: `tether-NAME`.
 */
context: string, 
/**
 * The laptop's end of the tunnel.
 */
local: number, 
/**
 * The API server's port on the VM.
 */
remote: number, 
/**
 * The name the API server's certificate is checked against.
 */
server_name: string, 
/**
 * The user's kubeconfig that names it.
 */
kubeconfig: string, 
/**
 * The VM's kubeconfig it came from.
 */
config: string, };

/**
 * The doctor's verdicts.
 */
export type Doctor = { local: Array<Check>, vms: Array<VmChecks>, };

export type VmChecks = { name: string, checks: Array<Check>, };

/**
 * One log line.
 */
export type LogLine = { at_ms: number, 
/**
 * `error`, `warn` or `info`.
 */
level: string, 
/**
 * The VM the line is about, if it names one.
 */
vm?: string, 
/**
 * The message, then its other fields as `key=value`.
 */
text: string, };

/**
 * A published port's protocol. Tether forwards TCP.
 */
export type Proto = "tcp" | "udp" | "sctp";

/**
 * A container's published port that Tether cannot forward (UDP), shown as such.
 */
export type UnforwardedPort = { container: string, port: number, proto: Proto, 
/**
 * Why, in words for the user.
 */
reason: string, };

/**
 * Everything `tether status` shows about one VM.
 */
export type VmStatus = { name: string, host: string, 
/**
 * The jump hosts of the last connection (`user@host:port`, outermost first); empty when
 * the VM is reached directly.
 */
via?: Array<string>, 
/**
 * Its Kubernetes API, when tunnelled for kubectl.
 */
kube?: KubeView | null, arch?: Arch | null, 
/**
 * Unix time in milliseconds of the last state change.
 */
since_ms: number, rtt_ms?: number | null, socket: string, docker_host: string, forwards: Array<ForwardStatus>, 
/**
 * Reverse tunnels: the VM's ports carried to this laptop.
 */
reverse: Array<ReverseStatus>, last_error?: string | null, 
/**
 * The code, facts and advice of `last_error`.
 */
error_code?: ErrorCode | null, error_details?: ErrorDetails | null, error_advice?: Advice | null, engine?: EngineInfo | null, active: boolean, 
/**
 * Connect whenever the engine starts.
 */
auto_connect: boolean, 
/**
 * Published container ports that are not forwarded (UDP).
 */
unforwarded?: Array<UnforwardedPort>, 
/**
 * Set when the engine's architecture is not the one the VM is labelled with.
 */
arch_warning?: string | null, 
/**
 * Whether published container ports are forwarded automatically (the VM's own choice, or
 * the default).
 */
auto_forward: boolean, 
/**
 * The Docker socket's pre-opened channels (`settings.docker_pool`), as of this answer.
 */
docker_pool?: PoolView, 
/**
 * The VM's shared folders, as of this answer (the `shares` event follows them).
 */
shares?: Array<ShareView>, } & ({ "state": "disconnected" } | { "state": "connecting" } | { "state": "connected" } | { "state": "degraded" } | { "state": "reconnecting", attempt: number, } | { "state": "failed" });

/**
 * Where a synced folder is.
 */
export type SyncState = "paused" | "scanning" | "syncing" | "in_sync" | "conflict" | "error";

/**
 * A conflict: the laptop's version of `path` kept its name, the VM's is at `copy`.
 */
export type ConflictView = { 
/**
 * The laptop path.
 */
path: string, 
/**
 * Where the VM's version is now, beside it.
 */
copy: string, at_ms: number, };

/**
 * One folder a container mounted, kept in sync with its mirror on the VM.
 */
export type SyncedFolder = { laptop: string, vm: string, state: SyncState, 
/**
 * Files, folders and links in sync.
 */
entries: number, 
/**
 * Changes on their way.
 */
pending: number, conflicts: Array<ConflictView>, 
/**
 * Paths that cannot be synced, each with why.
 */
problems: Array<string>, 
/**
 * What stops the whole folder, with the fix.
 */
error?: string | null, };

/**
 * A shared root and the folders under it that containers use.
 */
export type ShareView = { name: string, path: string, ignore: Array<string>, 
/**
 * The worst state among its folders (in sync with none).
 */
state: SyncState, folders: Array<SyncedFolder>, 
/**
 * What stops every folder of this VM (no agent for its architecture, say), with the fix.
 */
error?: string | null, };

/**
 * One VM's shared folders.
 */
export type VmShares = { vm: string, shares: Array<ShareView>, };

/**
 * A shared root: bind mounts of folders under `path` are synced to the VM.
 */
export type Share = { name: string, 
/**
 * An absolute laptop path.
 */
path: string, 
/**
 * Extra ignore rules, .gitignore syntax, after Tether's defaults (`!node_modules/` brings
 * one back).
 */
ignore?: Array<string>, };

/**
 * Typed events on the engine's broadcast.
 */
export type Event = { "event": "state", vm: string, error?: string | null, 
/**
 * The code, facts and advice of `error`, so a client never reads them out of its words.
 */
code?: ErrorCode | null, details?: ErrorDetails | null, advice?: Advice | null, } & ({ "state": "disconnected" } | { "state": "connecting" } | { "state": "connected" } | { "state": "degraded" } | { "state": "reconnecting", attempt: number, } | { "state": "failed" }) | { "event": "forward", vm: string, forward: ForwardStatus, } | { "event": "reverse", vm: string, reverse: Array<ReverseStatus>, } | { "event": "engine", vm: string, engine: EngineInfo, } | { "event": "rtt", vm: string, rtt_ms: number, } | { "event": "active", vm: string | null, } | { "event": "vm_added", vm: string, } | { "event": "vm_removed", vm: string, } | { "event": "containers", vm: string, } | { "event": "health", vm: string, health: Health, } | { "event": "shares", vm: string, shares: Array<ShareView>, } | { "event": "conflict", vm: string, conflict: ConflictView, } | { "event": "share_suggested", vm: string, path: string, };

/**
 * An event with the time it happened (unix milliseconds).
 */
export type TimedEvent = { at_ms: number, event: Event, };

/**
 * What a successful connect reports.
 */
export type ConnectReport = { status: VmStatus, };

/**
 * The Docker Engine as the VM's own API describes it.
 */
export type EngineHealth = { ping_ms: number, version: string, api_version: string, os: string, kernel: string, arch: string, containers_running: number, containers_total: number, images: number, docker_root: string, };

/**
 * Used and total bytes of one filesystem.
 */
export type Disk = { used: number, total: number, };

/**
 * The VM itself, from /proc and df.
 */
export type VmHealth = { load: [number, number, number], cpus: number, mem_used: number, mem_total: number, disk_root: Disk, disk_docker: Disk, };

/**
 * One health reading of a VM.
 */
export type Health = { at_ms: number, rtt_ms?: number | null, engine?: EngineHealth | null, vm?: VmHealth | null, arch_warning?: string | null, 
/**
 * What could not be read this time, and why.
 */
problems?: Array<string>, };

/**
 * A point of the history, for charts.
 */
export type Sample = { at_ms: number, rtt_ms: number | null, engine_ms: number | null, load1: number | null, mem_used: number | null, };

/**
 * A VM's latest health and its history.
 */
export type HealthReport = { latest: Health | null, history: Array<Sample>, };

/**
 * How a VM is reached, as the app's edit form gives it: everything else of its profile (key,
 * tunnels, options) is left as it is.
 */
export type ConnectionSettings = { host: string, port: number | null, user: string | null, arch: Arch | null, 
/**
 * A key file; `None` keeps the one set.
 */
identity: string | null, 
/**
 * `None` is Docker's default path.
 */
remote_socket: string | null, 
/**
 * Jump hosts, `[user@]host[:port]` separated by commas; `None` follows ~/.ssh/config.
 */
jump: string | null, };

/**
 * What failed, as a stable name on the wire. A code this build does not know (from a
 * newer engine) reads as [`ErrorCode::Unknown`], and is shown by its message.
 */
export type ErrorCode = "no_such_vm" | "vm_exists" | "no_active_vm" | "config_corrupt" | "config_invalid" | "tunnel_exists" | "reverse_exists" | "no_such_tunnel" | "no_such_reverse" | "no_such_share" | "no_kube_tunnel" | "key_exists" | "key_in_use" | "host_key_unknown" | "host_key_changed" | "host_key_other_type" | "host_key_revoked" | "host_key_not_confirmed" | "host_key_not_new" | "host_key_in_openssh" | "auth_failed" | "passphrase_required" | "wrong_passphrase" | "keychain_locked" | "keychain_unavailable" | "no_such_key" | "keychain" | "identity" | "unknown_host" | "connection_refused" | "unreachable" | "ssh" | "link_lost" | "port_in_use" | "port_privileged" | "local_socket" | "reverse_refused" | "reverse_failed" | "kube_failed" | "ssh_config" | "docker_context" | "internal" | "local_files" | "known_hosts" | "key_shared" | "not_connected" | "docker_api" | "remote_command" | "key_install_failed" | "key_login_failed" | "no_keychain_key" | "shutting_down" | "engine_running" | "bad_request" | "forbidden" | "engine_unreachable" | "engine" | "autostart" | "open" | "unknown";

/**
 * What the window can do about a failure, as a button.
 */
export type FixAction = "trust_key" | "review_key" | "retry" | "connect" | "edit_vm" | "enter_passphrase" | "choose_key" | "use_port" | "open_settings" | "open_diagnostics" | "add_vm";

/**
 * One action offered for a failure, with its label.
 */
export type Fix = { action: FixAction, label: string, };

/**
 * A failure in a person's words: a short title, what happened and what to do, and the actions
 * that resolve it.
 */
export type Advice = { title: string, sentence: string, fixes: Array<Fix>, };

/**
 * Facts about a failure, typed by what failed, so that no client reads them out of the
 * message: the fingerprint to confirm, the recorded keys, the port and who holds it.
 */
export type ErrorDetails = { "kind": "host_key", 
/**
 * `host` or `[host]:port`, as known_hosts names it.
 */
host: string, 
/**
 * The key the VM presents.
 */
key_type: string, fingerprint: string, 
/**
 * The keys recorded for the host that the presented one conflicts with.
 */
recorded?: Array<RecordedKey>, 
/**
 * Whether `host` is a jump host on the way to the VM (said for an unknown key).
 */
jump?: boolean, } | { "kind": "port", port: number, remote: number, 
/**
 * A port to try instead.
 */
suggestion: number, 
/**
 * Who holds it, as "pid 4121 (node)", when that can be found out.
 */
holder?: string | null, } | { "kind": "vm", vm: string, } | { "kind": "key", key: string, used_by: Array<string>, } | { "kind": "docker", message: string, };

/**
 * A key recorded in a known_hosts file.
 */
export type RecordedKey = { key_type: string, fingerprint: string, file: string, line: number, };

/**
 * The error half of a response, and of a status or event with a failure: a stable code, the
 * engine's sentence (the CLI's words), the facts (see [`ErrorDetails`]), and the advice the window
 * and notifications show ([`advise`]).
 */
export type ErrorBody = { code: ErrorCode, message: string, 
/**
 * Boxed: most errors have none, and every `Result` carrying this stays small.
 */
details?: ErrorDetails | null, 
/**
 * Absent from an engine older than this field: a client then shows `message`.
 */
advice?: Advice | null, };

/**
 * Preferences of the front ends (the app's Settings view).
 */
export type Settings = { 
/**
 * Desktop notifications on unexpected disconnects, reconnects and host-key problems.
 */
notifications: boolean, 
/**
 * Forward containers' published ports automatically, for VMs that do not say.
 */
auto_forward: boolean, 
/**
 * Let automatic forwards take ports below 1024 on the laptop (else they move up by 10000).
 */
privileged_ports: boolean, 
/**
 * Most connections one forward (the Docker socket, or one tunnel) carries at once; more are
 * refused, so one local process cannot open channels without bound.
 */
max_streams: number, 
/**
 * Most channels to the Docker socket kept open ahead of demand (0: none), so a new docker
 * connection starts one round trip sooner. Each is one idle connection on dockerd's socket,
 * and there are none after half a minute without a docker connection.
 */
docker_pool: number, 
/**
 * Answer the docker CLI's `/_ping` on the laptop with the engine's own answer, learned and
 * kept current by watching the engine (see `ping`): one round trip less per docker command.
 */
docker_ping_cache: boolean, 
/**
 * Container ports never forwarded automatically: well-known services on the laptop
 * (databases, caches, SSH, mail, DNS…) whose local clients would otherwise reach a
 * container. A manual tunnel, or the label `dev.tether.forward.PORT=true`, still does.
 */
auto_forward_deny: Array<number>, };

/**
 * How a keychain key came to be.
 */
export type KeyOrigin = "generated" | "imported";

/**
 * A key as the front ends show it.
 */
export type KeyView = { name: string, public: string, fingerprint: string, origin: KeyOrigin, created_ms: number, 
/**
 * VMs that log in with it.
 */
used_by: Array<string>, 
/**
 * A command to paste into a shell on a VM that installs this key, for people who would
 * rather not give Tether a password.
 */
install_command: string, };

/**
 * What a rotation did.
 */
export type RotateReport = { vm: string, key: string, old_fingerprint: string, new_fingerprint: string, 
/**
 * Set when the old key could not be removed from the VM (the new one works regardless).
 */
warning: string | null, };

/**
 * One published port of a container.
 */
export type PortView = { private: number, public: number | null, proto: Proto, 
/**
 * The laptop port forwarded to it, if any.
 */
local: number | null, 
/**
 * Whether that forward was made automatically.
 */
auto: boolean, 
/**
 * Why it is not forwarded automatically (UDP, a well-known service port, a label).
 */
not_forwarded?: string | null, };

/**
 * One container.
 */
export type ContainerView = { id: string, name: string, image: string, state: string, status: string, 
/**
 * The health check's verdict, when the image has one.
 */
health: string | null, ports: Array<PortView>, cpu_percent: number | null, mem_bytes: number | null, mem_limit: number | null, 
/**
 * The Compose project it belongs to (`com.docker.compose.project`), if any.
 */
project?: string, 
/**
 * Its Compose service (`com.docker.compose.service`).
 */
service?: string, };

/**
 * One check's verdict.
 */
export type Check = { 
/**
 * Stable id: `ssh`, `socket`, `access`, `forwarding`, `arch`.
 */
id: string, title: string, ok: boolean, detail: string, 
/**
 * What to do when it failed.
 */
fix?: string | null, };

/**
 * A `Host` entry of ~/.ssh/config, for the "pick a host" list.
 */
export type SshHost = { alias: string, host: string, user: string | null, port: number | null, };

/**
 * What a VM's presented host key is to the known_hosts files.
 */
export type HostKeyVerdict = "known" | "unknown" | "changed" | "revoked" | "other_type";

/**
 * A VM's host key, fetched without logging in, and what the known_hosts files say of it.
 */
export type HostKeyScan = { 
/**
 * Whose key: the VM's host as known_hosts names it, or a jump host's on the way to it.
 */
host: string, 
/**
 * The key is a jump host's, not the VM's: trust it, then scan again for the next.
 */
jump: boolean, status: HostKeyVerdict, key_type: string, fingerprint: string, 
/**
 * The recorded keys behind a refusal, in words.
 */
detail?: string | null, 
/**
 * The recorded keys behind a refusal (changed, revoked, other types).
 */
recorded?: Array<RecordedKey>, };

/**
 * One local TCP port forwarded to a port on the VM's loopback.
 */
export type PortMap = { local: number, remote: number, };

/**
 * A port on the VM whose connections come to a port on this laptop (`ssh -R`): how a container
 * on the VM reaches a database, a debugger or an API running here.
 */
export type ReverseMap = { 
/**
 * Where the VM listens: its port, on its 127.0.0.1 unless `bind` says otherwise.
 */
remote: number, 
/**
 * Where on this laptop (127.0.0.1) each connection goes.
 */
local: number, 
/**
 * One other address of the VM to listen on instead of its loopback.
 */
bind?: string | null, };

/**
 * A VM's Kubernetes API server reached from the laptop: its tunnel is one of the profile's
 * `forwards` (local → remote), and the kubeconfig written names it `tether-NAME`.
 */
export type KubeLink = { 
/**
 * The VM's kubeconfig, as given to `cat` on the VM (`~/` is the login's home).
 */
config: string, 
/**
 * The laptop's end of the API server's tunnel.
 */
local: number, 
/**
 * The API server's port on the VM.
 */
remote: number, 
/**
 * The host its certificate names (the VM kubeconfig's server host).
 */
server_name: string, 
/**
 * The user's kubeconfig the entries were written to.
 */
kubeconfig: string, };

/**
 * A VM as the user described it.
 *
 * The fields the file may leave out are optional in the UI's type too, so the window can send a
 * new VM's profile with only what the user gave.
 */
export type Profile = { 
/**
 * Host name, address, or a `Host` alias from ~/.ssh/config.
 */
host: string, port?: number | null, user?: string | null, arch?: Arch | null, 
/**
 * Private key file; without it (and without `key`) ssh-agent and the default keys are tried.
 */
identity?: string | null, 
/**
 * A key in the OS keychain, by its name under `[keys]`.
 */
key?: string | null, 
/**
 * Jump hosts, in ProxyJump syntax (`[user@]host[:port]`, several separated by commas);
 * "none" ignores a ProxyJump in ~/.ssh/config. Unset follows ~/.ssh/config.
 */
jump?: string | null, remote_socket?: string, forwards?: Array<PortMap>, 
/**
 * Reverse tunnels: ports on the VM's loopback carried to ports on this laptop.
 */
reverse?: Array<ReverseMap>, 
/**
 * The VM's Kubernetes API server, tunnelled and named in the user's kubeconfig.
 */
kube?: KubeLink | null, auto_connect?: boolean, 
/**
 * Forward containers' published ports automatically; unset follows the global default.
 */
auto_forward?: boolean | null, 
/**
 * Laptop folders whose subfolders containers on this VM may bind-mount (synced to a mirror
 * on the VM); unset: the home folder, as `home`. An empty list shares nothing.
 */
shares?: Array<Share> | null, };

/**
 * What `kube_enable` is asked for.
 */
export type KubeSetup = { 
/**
 * The VM's kubeconfig; none tries the usual places.
 */
config?: string, 
/**
 * The laptop's port; none takes the API server's own if free and not on
 * `settings.auto_forward_deny`, else any free one.
 */
local?: number, 
/**
 * The user's kubeconfig to write (the client's KUBECONFIG, or ~/.kube/config).
 */
kubeconfig: string, 
/**
 * What kubectl runs for credentials: the client's own `tether` and its arguments.
 */
exec: Array<string>, };

/**
 * What only the caller's process knows: its `PATH` and `DOCKER_HOST`.
 */
export type ClientFacts = { path?: string, docker_host?: string, };

/**
 * What a container action does.
 */
export type Action = "start" | "stop" | "restart";

/**
 * A request. The passphrase field travels only over the private control socket and is never
 * logged (this type has no Debug on purpose). The UI's TypeScript type is generated from this
 * one (`tests/typescript.rs`): the window sends these as they are.
 */
export type Request = { "op": "ping" } | { "op": "vm_add", name: string, profile: Profile, } | { "op": "vm_remove", name: string, } | { "op": "vm_set_connection", name: string, connection: ConnectionSettings, } | { "op": "vm_set_key", name: string, key: string, } | { "op": "vm_list" } | { "op": "connect", name?: string, accept_new?: boolean, fingerprint?: string, passphrase?: string, } | { "op": "disconnect", name?: string, all?: boolean, } | { "op": "use", name: string, } | { "op": "tunnel_add", name?: string, maps: Array<PortMap>, } | { "op": "tunnel_remove", name?: string, ports: Array<number>, } | { "op": "reverse_add", name?: string, maps: Array<ReverseMap>, } | { "op": "reverse_remove", name?: string, 
/**
 * The VM's ports.
 */
ports: Array<number>, } | { "op": "kube_enable", name?: string, setup: KubeSetup, } | { "op": "kube_disable", name?: string, } | { "op": "kube_credential", name: string, } | { "op": "status" } | { "op": "recent_events", name: string, } | { "op": "set_auto_connect", name: string, on: boolean, } | { "op": "set_notifications", on: boolean, } | { "op": "key_list" } | { "op": "key_gen", name: string, } | { "op": "key_import", name: string, path: string, passphrase?: string, } | { "op": "key_show", name: string, } | { "op": "key_remove", name: string, } | { "op": "key_rotate", vm: string, } | { "op": "key_install", vm: string, key: string, password: string, } | { "op": "check_vm", name: string, } | { "op": "health", name?: string, } | { "op": "containers", name?: string, } | { "op": "container_action", name?: string, id: string, action: Action, } | { "op": "doctor", name?: string, facts?: ClientFacts, } | { "op": "logs", name?: string, lines: number, } | { "op": "doctor_report", file: string, facts?: ClientFacts, } | { "op": "project_action", name?: string, project: string, action: Action, } | { "op": "container_logs", name?: string, id: string, tail: number, } | { "op": "follow_logs", name?: string, id: string, tail: number, } | { "op": "set_auto_forward", name?: string, on: boolean, } | { "op": "set_privileged_ports", on: boolean, } | { "op": "share_add", name?: string, share: Share, } | { "op": "share_remove", name?: string, share: string, } | { "op": "shares", name?: string, } | { "op": "ssh_hosts" } | { "op": "use_docker_context", vm?: string, } | { "op": "scan_host_key", name: string, } | { "op": "trust_host_key", name: string, fingerprint: string, } | { "op": "replace_host_key", name: string, fingerprint: string, } | { "op": "subscribe" } | { "op": "shutdown" };
