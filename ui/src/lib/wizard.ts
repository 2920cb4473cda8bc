// The onboarding wizard's flow, as pure functions: which steps a choice of key leads through,
// and whether a step's input is good enough to go on. The component only renders and calls.

export type KeyChoice = "generate" | "import" | "agent";

export type Step = "welcome" | "vm" | "key" | "hostkey" | "install" | "checks" | "done";

export const STEP_TITLES: Record<Step, string> = {
  welcome: "Welcome",
  vm: "The VM",
  key: "Key",
  hostkey: "Host key",
  install: "Install the key",
  checks: "Checks",
  done: "Done",
};

/**
 * The steps in order. The host key is verified before the key is installed: the one password
 * login must only ever go to a VM whose identity the user confirmed. With ssh-agent or the
 * user's own ~/.ssh keys there is nothing to install.
 */
export function steps(choice: KeyChoice): Step[] {
  const all: Step[] = ["welcome", "vm", "key", "hostkey", "install", "checks", "done"];
  return choice === "agent" ? all.filter((s) => s !== "install") : all;
}

export function next(current: Step, choice: KeyChoice): Step {
  const list = steps(choice);
  const i = list.indexOf(current);
  return list[Math.min(i + 1, list.length - 1)];
}

export function back(current: Step, choice: KeyChoice): Step {
  const list = steps(choice);
  const i = list.indexOf(current);
  return list[Math.max(i - 1, 0)];
}

export interface VmForm {
  name: string;
  host: string;
  user: string;
  port: string;
  arch: string;
  socket: string;
  /** Jump hosts: [user@]host[:port], several separated by commas. */
  jump: string;
}

/** Problems with the VM form, by field; empty when it can be submitted. */
export function vmProblems(f: VmForm, taken: string[]): Partial<Record<keyof VmForm, string>> {
  const out: Partial<Record<keyof VmForm, string>> = {};
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(f.name)) out.name = "Letters, digits, - or _, up to 32, starting with a letter or digit";
  else if (taken.includes(f.name)) out.name = `There is already a VM named ${f.name}`;
  if (!f.host.trim()) out.host = "The VM's address, host name or ~/.ssh/config alias";
  else if (/\s/.test(f.host.trim())) out.host = "No spaces in a host name";
  if (f.port !== "" && !(/^\d+$/.test(f.port) && +f.port >= 1 && +f.port <= 65535)) out.port = "1 to 65535";
  if (!f.arch) out.arch = "Pick the VM's architecture, so Tether can warn when images do not match";
  if (f.socket.trim() && !f.socket.trim().startsWith("/")) out.socket = "An absolute path, such as /var/run/docker.sock";
  if (f.jump.trim() && !jumpsOk(f.jump)) out.jump = "Jump hosts as [user@]host[:port], several separated by commas";
  return out;
}

/** Whether a ProxyJump list reads as one (the engine checks it again when it is saved). */
export function jumpsOk(spec: string): boolean {
  const hops = spec.split(",").map((h) => h.trim()).filter((h) => h !== "");
  return hops.length > 0 && hops.every((h) => /^(ssh:\/\/)?([^@\s,/]+@)?(\[[0-9A-Fa-f:.]+\]|[^@\s,/:[\]]+)(:\d{1,5})?$/.test(h));
}

/** A VM name suggested from a host: its first label, cleaned up. */
export function suggestName(host: string): string {
  const first = host.trim().split(/[.:]/)[0] ?? "";
  const cleaned = first.replace(/[^A-Za-z0-9_-]/g, "-").replace(/^[-_]+/, "").slice(0, 32);
  return /^\d+$/.test(cleaned) ? `vm-${cleaned}` : cleaned;
}
