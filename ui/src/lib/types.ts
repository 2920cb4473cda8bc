// Shapes of what the engine sends (tether-core's VmStatus, Event and friends, as JSON).

export type StateName = "disconnected" | "connecting" | "connected" | "degraded" | "reconnecting" | "failed";

export interface ForwardStatus {
  local: number;
  remote: number;
  state: "listening" | "failed" | "idle";
  error?: string;
  active: number;
  total: number;
  /** Made for a container's published port. */
  auto?: boolean;
  container?: string;
}

export interface UnforwardedPort {
  container: string;
  port: number;
  proto: string;
  /** Why, in words for the user. */
  reason?: string;
}

export interface EngineInfo {
  ok: boolean;
  version?: string;
  api_version?: string;
  os?: string;
  arch?: string;
  error?: string;
}

export interface VmStatus {
  name: string;
  host: string;
  arch?: "arm64" | "x86_64";
  state: StateName;
  attempt?: number;
  since_ms: number;
  rtt_ms?: number;
  socket: string;
  docker_host: string;
  forwards: ForwardStatus[];
  last_error?: string;
  /** The code and facts of `last_error`. */
  error_code?: string;
  error_details?: ErrorDetails;
  engine?: EngineInfo;
  active: boolean;
  auto_connect: boolean;
  unforwarded?: UnforwardedPort[];
  arch_warning?: string;
  auto_forward?: boolean;
}

export type EngineEvent =
  | { event: "state"; vm: string; state: StateName; attempt?: number; error?: string; code?: string; details?: ErrorDetails }
  | { event: "forward"; vm: string; forward: ForwardStatus }
  | { event: "engine"; vm: string; engine: EngineInfo }
  | { event: "rtt"; vm: string; rtt_ms: number }
  | { event: "active"; vm: string | null }
  | { event: "vm_added"; vm: string }
  | { event: "vm_removed"; vm: string }
  | { event: "containers"; vm: string }
  | { event: "health"; vm: string; health: Health };

export interface TimedEvent {
  at_ms: number;
  event: EngineEvent;
}

/** Facts about a failure, by what failed (the engine's `ErrorDetails`). */
export type ErrorDetails =
  | { kind: "host_key"; host: string; key_type: string; fingerprint: string; recorded?: { key_type: string; fingerprint: string; file: string; line: number }[] }
  | { kind: "port"; port: number; remote: number; suggestion: number; holder?: string }
  | { kind: "vm"; vm: string }
  | { kind: "key"; key: string; used_by: string[] };

export interface IpcError {
  code: string;
  message: string;
  details?: ErrorDetails;
}

export interface Settings {
  notifications: boolean;
  start_at_login: boolean;
  auto_forward: boolean;
  privileged_ports: boolean;
}

export interface Disk {
  used: number;
  total: number;
}

export interface Health {
  at_ms: number;
  rtt_ms?: number;
  engine?: {
    ping_ms: number;
    version: string;
    api_version: string;
    os: string;
    kernel: string;
    arch: string;
    containers_running: number;
    containers_total: number;
    images: number;
    docker_root: string;
  };
  vm?: { load: [number, number, number]; cpus: number; mem_used: number; mem_total: number; disk_root: Disk; disk_docker: Disk };
  arch_warning?: string;
  problems?: string[];
}

export interface Sample {
  at_ms: number;
  rtt_ms?: number | null;
  engine_ms?: number | null;
  load1?: number | null;
  mem_used?: number | null;
}

export interface HealthReport {
  latest?: Health | null;
  history: Sample[];
}

export interface PortView {
  private: number;
  public?: number | null;
  proto: string;
  local?: number | null;
  auto: boolean;
  /** Why it is not forwarded automatically: UDP, a well-known service port, or a label. */
  not_forwarded?: string | null;
}

export interface ContainerView {
  id: string;
  name: string;
  image: string;
  state: string;
  status: string;
  health?: string | null;
  ports: PortView[];
  cpu_percent?: number | null;
  mem_bytes?: number | null;
  mem_limit?: number | null;
}

export interface SshHost {
  alias: string;
  host: string;
  user?: string;
  port?: number;
}

export interface KeyView {
  name: string;
  public: string;
  fingerprint: string;
  origin: "generated" | "imported";
  created_ms: number;
  used_by: string[];
  install_command: string;
}

export interface Check {
  id: "ssh" | "socket" | "access" | "forwarding" | "arch";
  title: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface HostKeyScan {
  /** `other_type`: the VM is known by keys of other types, and presents none of them. */
  status: "known" | "unknown" | "changed" | "revoked" | "other_type";
  key_type: string;
  fingerprint: string;
  detail?: string;
}
