// The app's IPC: one typed function per Tauri command, and the engine's event stream.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Check, ContainerView, Doctor, EngineEvent, HealthReport, HostKeyScan, IpcError, KeyView, KubeView, LogLine, Settings, SshHost, TimedEvent, VmStatus } from "./types";

export interface NewVm {
  host: string;
  port?: number;
  user?: string;
  arch?: string;
  identity?: string;
  remote_socket?: string;
  jump?: string;
}

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

export const api = {
  status: () => call<VmStatus[]>("status"),
  connect: (name: string, fingerprint?: string) => call<VmStatus>("connect", { name, fingerprint }),
  disconnect: (name: string) => call<void>("disconnect", { name }),
  useVm: (name: string) => call<void>("use_vm", { name }),
  addVm: (name: string, vm: NewVm) => call<void>("add_vm", { name, vm }),
  updateVm: (name: string, vm: NewVm) => call<void>("update_vm", { name, vm }),
  removeVm: (name: string) => call<void>("remove_vm", { name }),
  addForward: (name: string, spec: string) => call<unknown>("add_forward", { name, spec }),
  removeForward: (name: string, local: number) => call<unknown>("remove_forward", { name, local }),
  doctor: () => call<Doctor>("doctor"),
  logs: (name: string | null, lines: number) => call<LogLine[]>("logs", { name, lines }),
  addReverse: (name: string, spec: string) => call<unknown>("add_reverse", { name, spec }),
  kubeEnable: (name: string, config?: string) => call<KubeView>("kube_enable", { name, config: config ?? null }),
  kubeDisable: (name: string) => call<void>("kube_disable", { name }),
  removeReverse: (name: string, remote: number) => call<unknown>("remove_reverse", { name, remote }),
  setAutoConnect: (name: string, on: boolean) => call<void>("set_auto_connect", { name, on }),
  recentEvents: (name: string) => call<TimedEvent[]>("recent_events", { name }),
  settings: () => call<Settings>("settings"),
  setNotifications: (on: boolean) => call<void>("set_notifications", { on }),
  setStartAtLogin: (on: boolean) => call<void>("set_start_at_login", { on }),
  sshHosts: () => call<SshHost[]>("ssh_hosts"),
  scanHostKey: (name: string) => call<HostKeyScan>("scan_host_key", { name }),
  trustHostKey: (name: string, fingerprint: string) => call<void>("trust_host_key", { name, fingerprint }),
  /** A reinstalled VM: its new key, confirmed by fingerprint, replaces the recorded one. */
  replaceHostKey: (name: string, fingerprint: string) => call<void>("replace_host_key", { name, fingerprint }),
  keyGen: (name: string) => call<KeyView>("key_gen", { name }),
  keyImport: (name: string, path: string, passphrase?: string) => call<KeyView>("key_import", { name, path, passphrase }),
  keyShow: (name: string) => call<KeyView>("key_show", { name }),
  keyInstall: (vm: string, key: string, password: string) => call<KeyView>("key_install", { vm, key, password }),
  useKey: (vm: string, key: string) => call<void>("use_key", { vm, key }),
  checkVm: (name: string) => call<Check[]>("check_vm", { name }),
  useDockerContext: (vm?: string) => call<string>("use_docker_context", { vm }),
  health: (name: string) => call<HealthReport>("health", { name }),
  containers: (name: string) => call<ContainerView[]>("containers", { name }),
  containerAction: (name: string, id: string, action: "start" | "stop" | "restart") => call<void>("container_action", { name, id, action }),
  projectAction: (name: string, project: string, action: "start" | "stop" | "restart") => call<string[]>("project_action", { name, project, action }),
  containerLogs: (name: string, id: string, tail = 200) => call<string[]>("container_logs", { name, id, tail }),
  /** Streams a container's output (the last 200 lines, then live) to `online`. */
  followLogs: (name: string, id: string, online: (line: string) => void) => {
    const onLine = new Channel<string>();
    onLine.onmessage = online;
    return call<void>("follow_logs", { name, id, onLine });
  },
  unfollowLogs: (id: string) => call<void>("unfollow_logs", { id }),
  setAutoForward: (name: string | null, on: boolean) => call<void>("set_auto_forward", { name, on }),
  setPrivilegedPorts: (on: boolean) => call<void>("set_privileged_ports", { on }),
  openPort: (port: number) => call<void>("open_port", { port }),
  onEvent: (f: (e: EngineEvent) => void): Promise<UnlistenFn> => listen<EngineEvent>("engine-event", (m) => f(m.payload)),
  /** The link to the engine was lost and is back: events may have been missed. */
  onResync: (f: () => void): Promise<UnlistenFn> => listen("engine-resync", () => f()),
};
