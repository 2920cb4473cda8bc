// Port-mapping input: parsed and checked as the user types, so errors show inline. The engine
// checks again (it alone knows whether a port is free on this laptop).

export interface PortMap {
  local: number;
  remote: number;
}

export type Parsed = { ok: true; map: PortMap } | { ok: false; error: string };

function port(s: string): number | null {
  if (!/^\d{1,5}$/.test(s.trim())) return null;
  const n = Number(s.trim());
  return n >= 1 && n <= 65535 ? n : null;
}

/** `LOCAL` or `LOCAL:REMOTE`, as `ssh -L` users write it. */
export function parsePortMap(spec: string): Parsed {
  const text = spec.trim();
  if (!text) return { ok: false, error: "Enter a port, e.g. 3000 or 5433:5432" };
  const parts = text.split(":");
  if (parts.length > 2) return { ok: false, error: "Use LOCAL or LOCAL:REMOTE, e.g. 5433:5432" };
  const local = port(parts[0]);
  const remote = parts.length === 2 ? port(parts[1]) : local;
  if (local === null || remote === null) return { ok: false, error: "Ports are numbers from 1 to 65535" };
  return { ok: true, map: { local, remote } };
}

/** A reverse tunnel: the VM's port `remote` (on its 127.0.0.1) comes to this laptop's `local`. */
export interface ReverseMap {
  remote: number;
  local: number;
}

export type ParsedReverse = { ok: true; map: ReverseMap } | { ok: false; error: string };

/** `REMOTE` or `REMOTE:LOCAL`, the VM's port first, as `ssh -R` users write it. */
export function parseReverseMap(spec: string): ParsedReverse {
  const text = spec.trim();
  if (!text) return { ok: false, error: "Enter the VM's port, e.g. 5432 or 15432:5432" };
  const parts = text.split(":");
  if (parts.length > 2) return { ok: false, error: "Use REMOTE or REMOTE:LOCAL, e.g. 15432:5432 (the VM's port first)" };
  const remote = port(parts[0]);
  const local = parts.length === 2 ? port(parts[1]) : remote;
  if (local === null || remote === null) return { ok: false, error: "Ports are numbers from 1 to 65535" };
  return { ok: true, map: { remote, local } };
}

/** Why `map` cannot be added next to the existing mappings (of every VM), if it cannot. */
export function conflict(map: PortMap, taken: { vm: string; local: number }[], vm: string): string | null {
  const other = taken.find((t) => t.local === map.local);
  if (!other) return null;
  return other.vm === vm
    ? `Local port ${map.local} is already forwarded; remove it first`
    : `Local port ${map.local} is already used by ${other.vm}`;
}

/** Ports below 1024 need privileges on the laptop; say so before the engine has to. */
export function privilegedHint(map: PortMap): string | null {
  return map.local < 1024 ? `Port ${map.local} needs administrator rights here; ${map.local + 8000} is a common choice` : null;
}
