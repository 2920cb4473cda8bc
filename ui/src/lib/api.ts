// The app's IPC: one typed function per thing the window asks, nearly all of them a control
// request (the generated `Request` type) sent through the window's one `engine` command, and the
// engine's event stream.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Action, ConnectReport, Request } from "./engine.gen";
import { parsePortMap } from "./ports";
import { connectionOf, parsed, profileOf, reverseOf, type NewVm } from "./requests";
import type { Check, ContainerView, Doctor, VmShares, EngineEvent, HealthReport, HostKeyScan, IpcError, KeyView, KubeView, LogLine, Settings, SshHost, TimedEvent, VmStatus } from "./types";

export type { NewVm } from "./requests";

/** Errors from commands arrive as {code, message}; anything else is wrapped in that shape. */
export function asIpcError(e: unknown): IpcError {
  if (e && typeof e === "object" && "code" in e && "message" in e) return e as IpcError;
  return { code: "unknown", message: String(e) };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asIpcError(e);
  }
}

/** One control request, as the engine's generated `Request` type describes it; its reply as `T`. */
function engine<T>(request: Request): Promise<T> {
  return call<T>("engine", { request });
}

export const api = {
  status: () => engine<VmStatus[]>({ op: "status" }),
  connect: async (name: string, fingerprint?: string) =>
    (await engine<ConnectReport>({ op: "connect", name, fingerprint })).status,
  disconnect: (name: string) => engine<void>({ op: "disconnect", name }),
  useVm: (name: string) => engine<void>({ op: "use", name }),
  addVm: (name: string, vm: NewVm) => engine<void>({ op: "vm_add", name, profile: profileOf(vm) }),
  /** Changes a VM's connection settings from the form; its key, tunnels and options stay. */
  updateVm: (name: string, vm: NewVm) => engine<void>({ op: "vm_set_connection", name, connection: connectionOf(vm) }),
  removeVm: (name: string) => engine<void>({ op: "vm_remove", name }),
  addForward: async (name: string, spec: string) =>
    engine<unknown>({ op: "tunnel_add", name, maps: [parsed(parsePortMap(spec))] }),
  removeForward: (name: string, local: number) => engine<unknown>({ op: "tunnel_remove", name, ports: [local] }),
  doctor: () => call<Doctor>("doctor"),
  logs: (name: string | null, lines: number) => engine<LogLine[]>({ op: "logs", name: name ?? undefined, lines }),
  addReverse: async (name: string, spec: string) => engine<unknown>({ op: "reverse_add", name, maps: [reverseOf(spec)] }),
  kubeEnable: (name: string, config?: string) => call<KubeView>("kube_enable", { name, config: config ?? null }),
  kubeDisable: (name: string) => engine<void>({ op: "kube_disable", name }),
  removeReverse: (name: string, remote: number) => engine<unknown>({ op: "reverse_remove", name, ports: [remote] }),
  setAutoConnect: (name: string, on: boolean) => engine<void>({ op: "set_auto_connect", name, on }),
  recentEvents: (name: string) => engine<TimedEvent[]>({ op: "recent_events", name }),
  settings: () => call<Settings>("settings"),
  setNotifications: (on: boolean) => engine<void>({ op: "set_notifications", on }),
  setStartAtLogin: (on: boolean) => call<void>("set_start_at_login", { on }),
  sshHosts: () => engine<SshHost[]>({ op: "ssh_hosts" }),
  scanHostKey: (name: string) => engine<HostKeyScan>({ op: "scan_host_key", name }),
  trustHostKey: (name: string, fingerprint: string) => engine<void>({ op: "trust_host_key", name, fingerprint }),
  /** A reinstalled VM: its new key, confirmed by fingerprint, replaces the recorded one. */
  replaceHostKey: (name: string, fingerprint: string) => engine<void>({ op: "replace_host_key", name, fingerprint }),
  keyGen: (name: string) => engine<KeyView>({ op: "key_gen", name }),
  keyImport: (name: string, path: string, passphrase?: string) =>
    engine<KeyView>({ op: "key_import", name, path: path.trim(), passphrase: passphrase || undefined }),
  keyShow: (name: string) => engine<KeyView>({ op: "key_show", name }),
  keyInstall: (vm: string, key: string, password: string) => engine<KeyView>({ op: "key_install", vm, key, password }),
  /** Gives a VM a keychain key it can already log in with (the user ran the copied command). */
  useKey: (vm: string, key: string) => engine<void>({ op: "vm_set_key", name: vm, key }),
  checkVm: (name: string) => engine<Check[]>({ op: "check_vm", name }),
  useDockerContext: (vm?: string) => engine<string>({ op: "use_docker_context", vm }),
  health: (name: string) => engine<HealthReport>({ op: "health", name }),
  containers: (name: string) => engine<ContainerView[]>({ op: "containers", name }),
  shares: async (name: string) => (await engine<VmShares[]>({ op: "shares", name }))[0]?.shares ?? [],
  addShare: (name: string, share: string, path: string) =>
    engine<unknown>({ op: "share_add", name, share: { name: share, path: path.trim() } }),
  removeShare: (name: string, share: string) => engine<unknown>({ op: "share_remove", name, share }),
  containerAction: (name: string, id: string, action: Action) => engine<void>({ op: "container_action", name, id, action }),
  projectAction: (name: string, project: string, action: Action) =>
    engine<string[]>({ op: "project_action", name, project, action }),
  containerLogs: (name: string, id: string, tail = 200) => engine<string[]>({ op: "container_logs", name, id, tail }),
  followLogs: (name: string, id: string, online: (line: string) => void) => {
    const onLine = new Channel<string>();
    onLine.onmessage = online;
    return call<void>("follow_logs", { name, id, onLine });
  },
  unfollowLogs: (id: string) => call<void>("unfollow_logs", { id }),
  setAutoForward: (name: string | null, on: boolean) => engine<void>({ op: "set_auto_forward", name: name ?? undefined, on }),
  setPrivilegedPorts: (on: boolean) => engine<void>({ op: "set_privileged_ports", on }),
  openPort: (port: number) => call<void>("open_port", { port }),
  onEvent: (f: (e: EngineEvent) => void): Promise<UnlistenFn> => listen<EngineEvent>("engine-event", (m) => f(m.payload)),
  /** The link to the engine was lost and is back: events may have been missed. */
  onResync: (f: () => void): Promise<UnlistenFn> => listen("engine-resync", () => f()),
};
