import { describe, expect, it } from "vitest";
import { appendSample, bytes, percent, sparkline } from "./health";
import { applyEvent } from "./machines";
import type { VmStatus } from "./types";

describe("health", () => {
  it("keeps an hour of samples", () => {
    let h = appendSample([], { at_ms: 0, rtt_ms: 1 });
    h = appendSample(h, { at_ms: 1_800_000, rtt_ms: 2 });
    h = appendSample(h, { at_ms: 3_700_000, rtt_ms: 3, vm: { load: [0.5, 0, 0], cpus: 2, mem_used: 5, mem_total: 10, disk_root: { used: 1, total: 2 }, disk_docker: { used: 1, total: 2 } } });
    expect(h.map((s) => s.rtt_ms)).toEqual([2, 3]);
    expect(h[1].load1).toBe(0.5);
    expect(h[0].load1).toBeNull();
  });

  it("draws a sparkline through known values only", () => {
    expect(sparkline([], 100, 20)).toBe("");
    expect(sparkline([0, 10], 100, 20)).toBe("M0.0,20.0 L100.0,0.0");
    expect(sparkline([5, null, 10], 100, 20)).toBe("M0.0,10.0 L100.0,0.0");
  });

  it("formats sizes and shares", () => {
    expect(bytes(512e6)).toBe("512 MB");
    expect(bytes(3.44e9)).toBe("3.4 GB");
    expect(bytes(undefined)).toBe("–");
    expect(percent(1, 4)).toBe(25);
    expect(percent(1, 0)).toBe(0);
  });

  it("carries the arch warning from health readings to the VM", () => {
    const vm = { name: "arm", forwards: [] } as unknown as VmStatus;
    const next = applyEvent([vm], { event: "health", vm: "arm", health: { at_ms: 1, arch_warning: "labelled arm64" } });
    expect(next.vms[0].arch_warning).toBe("labelled arm64");
    expect(applyEvent([vm], { event: "containers", vm: "arm" }).vms).toEqual([vm]);
  });
});
