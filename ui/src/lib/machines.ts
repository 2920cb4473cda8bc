// Applies engine events to the list of VMs the UI shows. Pure, so it is unit-tested; the UI
// never polls: it loads the list once and then follows events.
import type { State } from "./engine.gen";
import type { EngineEvent, HostKeyScan, VmStatus } from "./types";

/** Returns the list after `ev`; `vm_added` needs a fresh status, so it asks for a reload. */
export function applyEvent(vms: VmStatus[], ev: EngineEvent, now = Date.now()): { vms: VmStatus[]; reload: boolean } {
  switch (ev.event) {
    case "state": {
      // The state part of the event (`state`, and `attempt` while reconnecting) replaces the VM's.
      const { event: _event, vm: _vm, error: _error, code: _code, details: _details, advice: _advice, ...state } = ev;
      return {
        reload: false,
        vms: vms.map((v) =>
          v.name !== ev.vm
            ? v
            : ({
                ...withoutAttempt(v),
                ...state,
                since_ms: v.state === ev.state ? v.since_ms : now,
                last_error: ev.state === "connected" ? undefined : (ev.error ?? v.last_error),
                error_code: ev.state === "connected" ? undefined : (ev.error ? ev.code : v.error_code),
                error_details: ev.state === "connected" ? undefined : (ev.error ? ev.details : v.error_details),
                error_advice: ev.state === "connected" ? undefined : (ev.error ? ev.advice : v.error_advice),
                // Not connected means no round trip and no engine answer to show.
                rtt_ms: ev.state === "connected" || ev.state === "degraded" ? v.rtt_ms : undefined,
                // No link, no engine: an answer from before the drop would be stale.
                engine: ev.state === "connected" || ev.state === "degraded" ? v.engine : undefined,
              } as VmStatus),
        ),
      };
    }
    case "forward":
      return {
        reload: false,
        vms: vms.map((v) => {
          if (v.name !== ev.vm) return v;
          const others = v.forwards.filter((f) => f.local !== ev.forward.local);
          return { ...v, forwards: [...others, ev.forward].sort((a, b) => a.local - b.local) };
        }),
      };
    case "reverse":
      return { reload: false, vms: vms.map((v) => (v.name === ev.vm ? { ...v, reverse: ev.reverse } : v)) };
    case "engine":
      return { reload: false, vms: vms.map((v) => (v.name === ev.vm ? { ...v, engine: ev.engine } : v)) };
    case "rtt":
      return { reload: false, vms: vms.map((v) => (v.name === ev.vm ? { ...v, rtt_ms: ev.rtt_ms } : v)) };
    case "active":
      return { reload: false, vms: vms.map((v) => ({ ...v, active: v.name === ev.vm })) };
    case "vm_removed":
      return { reload: false, vms: vms.filter((v) => v.name !== ev.vm) };
    case "vm_added":
      return { reload: true, vms };
    case "health":
      // The arch check rides on health readings.
      return { reload: false, vms: vms.map((v) => (v.name === ev.vm ? { ...v, arch_warning: ev.health.arch_warning } : v)) };
    case "containers":
      return { reload: false, vms };
    default:
      // An event this UI does not know (a newer engine): nothing to change.
      return { reload: false, vms };
  }
}

/** A status without the attempt count of an earlier reconnect. */
function withoutAttempt(v: VmStatus): VmStatus {
  const { attempt: _attempt, ...rest } = v as VmStatus & { attempt?: number };
  return rest as VmStatus;
}

/** One-word summary for a VM, as the list shows it. */
export function stateLabel(v: State): string {
  if (v.state === "reconnecting") return `reconnecting (attempt ${v.attempt})`;
  return v.state;
}

/** "12s ago" style age. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/**
 * For loads that overlap (a slow answer can arrive after a newer one): each call marks a load
 * started and returns a check that stays true only while that load is the newest.
 */
export function newestOnly(): () => () => boolean {
  let seq = 0;
  return () => {
    const mine = ++seq;
    return () => mine === seq;
  };
}

/**
 * A snapshot can be older than events that arrived while it was on its way; they are applied on
 * top of it (applying an event the snapshot already reflects changes nothing).
 */
export function replayOnto(vms: VmStatus[], events: EngineEvent[]): VmStatus[] {
  return events.reduce((v, ev) => applyEvent(v, ev).vms, vms);
}

/** Whether a scanned host key must be refused: anything but known or truly new. A key of a
 *  type not recorded for a VM known by other keys is never a first connection. */
export function hostKeyRefused(status: HostKeyScan["status"]): boolean {
  return status === "changed" || status === "revoked" || status === "other_type";
}

/** Whether the user may replace the recorded keys (a reinstalled VM), after confirming the
 *  presented fingerprint with the VM's administrator. A revoked key never. */
export function hostKeyReplaceable(status: HostKeyScan["status"]): boolean {
  return status === "changed" || status === "other_type";
}

/** Engine error codes that mean a host key was refused. */
export const HOST_KEY_REFUSALS = ["host_key_changed", "host_key_revoked", "host_key_other_type"];

/** Where a Debian VM keeps the public host key of this type, for the administrator to read. */
export function hostKeyFile(keyType: string): string {
  const kind = keyType.startsWith("ecdsa-") ? "ecdsa" : keyType.replace(/^ssh-/, "");
  return `/etc/ssh/ssh_host_${kind}_key.pub`;
}
