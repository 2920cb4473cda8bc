// What the window's forms become before they go to the engine: control requests' parts, as the
// generated types describe them. Pure functions, unit-tested; the engine checks everything again.
import type { Arch, ConnectionSettings, Profile, ReverseMap } from "./engine.gen";
import { parseReverseMap } from "./ports";
import type { IpcError } from "./types";

/** A VM as the add and edit forms hold it. */
export interface NewVm {
  host: string;
  port?: number;
  user?: string;
  arch?: string;
  identity?: string;
  remote_socket?: string;
  jump?: string;
}

/** The form's text with blanks as "not given". */
const given = (s?: string | null): string | undefined => (s && s.trim() ? s.trim() : undefined);

/** The add and edit forms' fields as the engine's connection settings. */
export function connectionOf(vm: NewVm): ConnectionSettings {
  return {
    host: vm.host.trim(),
    port: vm.port ?? null,
    user: given(vm.user) ?? null,
    arch: (given(vm.arch) as Arch | undefined) ?? null,
    identity: given(vm.identity) ?? null,
    remote_socket: given(vm.remote_socket) ?? null,
    jump: given(vm.jump) ?? null,
  };
}

/** A new VM's profile: only what the form gave; the engine fills in the rest. */
export function profileOf(vm: NewVm): Profile {
  const c = connectionOf(vm);
  const p: Profile = { host: c.host };
  if (c.port !== null) p.port = c.port;
  if (c.user !== null) p.user = c.user;
  if (c.arch !== null) p.arch = c.arch;
  if (c.identity !== null) p.identity = c.identity;
  if (c.remote_socket !== null) p.remote_socket = c.remote_socket;
  if (c.jump !== null) p.jump = c.jump;
  return p;
}

/** A spec the user typed, parsed as the port editor checked it; a bad one fails as the engine would. */
export function parsed<M>(r: { ok: true; map: M } | { ok: false; error: string }): M {
  if (!r.ok) throw { code: "config_invalid", message: r.error } satisfies IpcError;
  return r.map;
}

/** `[docker:]REMOTE[:LOCAL]`: the reverse editor's spec, `docker:` for the VM's Docker bridge. */
export function reverseOf(spec: string): ReverseMap {
  const bridge = spec.startsWith("docker:");
  const map = parsed(parseReverseMap(bridge ? spec.slice("docker:".length) : spec));
  return bridge ? { ...map, bind: "docker" } : map;
}

