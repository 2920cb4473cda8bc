import { describe, expect, it } from "vitest";
import { ago, applyEvent, hostKeyFile, hostKeyRefused, hostKeyReplaceable, newestOnly, replayOnto, stateLabel } from "./machines";
import type { EngineEvent, VmStatus } from "./types";

const base: VmStatus = {
  name: "arm",
  host: "10.0.0.2",
  arch: "arm64",
  state: "connected",
  since_ms: 1000,
  rtt_ms: 1.5,
  socket: "/run/t/arm/docker.sock",
  docker_host: "unix:///run/t/arm/docker.sock",
  forwards: [{ local: 3000, remote: 3000, state: "listening", active: 0, total: 0 }],
  reverse: [],
  engine: { ok: true, version: "26.1", arch: "aarch64", os: "linux" },
  active: true,
  auto_connect: false,
  auto_forward: false,
};
const other: VmStatus = { ...base, name: "x86", arch: "x86_64", active: false, forwards: [] };

describe("applyEvent", () => {
  it("tracks state changes with their time, attempt and error", () => {
    const { vms } = applyEvent([base, other], { event: "state", vm: "arm", state: "reconnecting", attempt: 2, error: "link dropped" }, 5000);
    expect(vms[0]).toMatchObject({ state: "reconnecting", attempt: 2, since_ms: 5000, last_error: "link dropped" });
    expect(vms[0].rtt_ms).toBeUndefined();
    expect(vms[1]).toBe(other);
  });

  it("clears the error once connected again", () => {
    const down = { ...base, state: "reconnecting" as const, attempt: 1, last_error: "x" };
    const { vms } = applyEvent([down], { event: "state", vm: "arm", state: "connected" }, 9000);
    expect(vms[0].last_error).toBeUndefined();
  });

  it("forgets the engine whenever the link is gone", () => {
    for (const state of ["disconnected", "reconnecting", "failed"] as const) {
      const { vms } = applyEvent([base], { event: "state", vm: "arm", state } as EngineEvent);
      expect(vms[0].engine, state).toBeUndefined();
    }
  });

  it("replaces one forward and keeps them sorted", () => {
    const f = { local: 2000, remote: 22, state: "failed" as const, error: "in use", active: 0, total: 0 };
    const { vms } = applyEvent([base], { event: "forward", vm: "arm", forward: f });
    expect(vms[0].forwards.map((x) => x.local)).toEqual([2000, 3000]);
    const again = applyEvent(vms, { event: "forward", vm: "arm", forward: { ...f, state: "listening", error: undefined } });
    expect(again.vms[0].forwards).toHaveLength(2);
    expect(again.vms[0].forwards[0].state).toBe("listening");
  });

  it("takes a VM's reverse tunnels whole from their event", () => {
    const r = { remote: 5432, local: 5432, state: "pending" as const, active: 0, total: 0 };
    const { vms } = applyEvent([base, other], { event: "reverse", vm: "arm", reverse: [r] });
    expect(vms[0].reverse).toEqual([r]);
    expect(vms[1].reverse).toEqual([]);
    const gone = applyEvent(vms, { event: "reverse", vm: "arm", reverse: [] });
    expect(gone.vms[0].reverse).toEqual([]);
  });

  it("follows the round trip", () => {
    const { vms } = applyEvent([base], { event: "rtt", vm: "arm", rtt_ms: 12.5 });
    expect(vms[0].rtt_ms).toBe(12.5);
  });

  it("moves the active marker", () => {
    const { vms } = applyEvent([base, other], { event: "active", vm: "x86" });
    expect(vms.map((v) => v.active)).toEqual([false, true]);
  });

  it("removes VMs and asks for a reload on additions", () => {
    expect(applyEvent([base, other], { event: "vm_removed", vm: "arm" }).vms).toEqual([other]);
    expect(applyEvent([base], { event: "vm_added", vm: "new" }).reload).toBe(true);
  });
});

describe("formatting", () => {
  it("labels reconnect attempts", () => {
    expect(stateLabel({ state: "reconnecting", attempt: 3 })).toBe("reconnecting (attempt 3)");
    expect(stateLabel({ state: "connected" })).toBe("connected");
  });

  it("says how long ago", () => {
    expect(ago(0, 59_000)).toBe("59s ago");
    expect(ago(0, 61_000)).toBe("1m ago");
    expect(ago(0, 2 * 3600_000)).toBe("2h ago");
  });
});

describe("loads that overlap", () => {
  it("lets only the newest load apply its answer", () => {
    const begin = newestOnly();
    const first = begin();
    expect(first()).toBe(true);
    const second = begin();
    expect(first()).toBe(false);
    expect(second()).toBe(true);
  });

  it("keeps a drop that happened while the snapshot was on its way", () => {
    const snapshot = [base];
    const during = [{ event: "state" as const, vm: "arm", state: "reconnecting" as const, attempt: 1, error: "link dropped" }];
    const [vm] = replayOnto(snapshot, during);
    expect(vm).toMatchObject({ state: "reconnecting", attempt: 1, last_error: "link dropped" });
    // Replaying what the snapshot already shows changes nothing.
    expect(replayOnto(snapshot, [{ event: "state", vm: "arm", state: "connected" }])[0].state).toBe("connected");
  });
});

describe("hostKeyFile", () => {
  it("names the file the VM's administrator reads the fingerprint from", () => {
    expect(hostKeyFile("ssh-ed25519")).toBe("/etc/ssh/ssh_host_ed25519_key.pub");
    expect(hostKeyFile("ecdsa-sha2-nistp256")).toBe("/etc/ssh/ssh_host_ecdsa_key.pub");
    expect(hostKeyFile("ssh-rsa")).toBe("/etc/ssh/ssh_host_rsa_key.pub");
  });
});

describe("host-key verdicts", () => {
  it("refuses a key of another type, and never treats it as new", () => {
    expect(hostKeyRefused("other_type")).toBe(true);
    expect(hostKeyRefused("changed")).toBe(true);
    expect(hostKeyRefused("revoked")).toBe(true);
    expect(hostKeyRefused("unknown")).toBe(false);
    expect(hostKeyRefused("known")).toBe(false);
  });
  it("offers replacing only what an administrator can confirm", () => {
    expect(hostKeyReplaceable("other_type")).toBe(true);
    expect(hostKeyReplaceable("changed")).toBe(true);
    expect(hostKeyReplaceable("revoked")).toBe(false);
  });
});

describe("error codes and facts follow the state", () => {
  it("keeps a failure's code and details, and clears them when connected", () => {
    const details = { kind: "host_key" as const, host: "h", key_type: "ecdsa-sha2-nistp256", fingerprint: "SHA256:x" };
    let { vms } = applyEvent([base], { event: "state", vm: base.name, state: "failed", error: "REFUSED", code: "host_key_other_type", details });
    expect(vms[0].error_code).toBe("host_key_other_type");
    expect(vms[0].error_details).toEqual(details);
    ({ vms } = applyEvent(vms, { event: "state", vm: base.name, state: "connected" }));
    expect(vms[0].error_code).toBeUndefined();
    expect(vms[0].error_details).toBeUndefined();
  });
});
