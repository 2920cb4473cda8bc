import { describe, expect, it } from "vitest";
import { offered, say, sayStatus } from "./errors";
import type { IpcError, VmStatus } from "./types";

const changed: IpcError = {
  code: "host_key_changed",
  message: "REFUSED: the host key of arm has CHANGED; run `tether vm host-key arm --replace SHA256:x`",
  details: { kind: "host_key", host: "arm", key_type: "ssh-ed25519", fingerprint: "SHA256:x" },
  advice: {
    title: "The VM's identity changed",
    sentence: "arm presents a different key from the one recorded, so Tether did not connect.",
    fixes: [{ action: "review_key", label: "Review the new key…" }],
  },
};

describe("errors in the window's words", () => {
  it("shows the advice, never the CLI's message", () => {
    const s = say(changed)!;
    expect(s.title).toBe("The VM's identity changed");
    expect(s.sentence).not.toContain("--replace");
    expect(s.sentence).not.toContain("REFUSED");
    expect(offered(s, ["review_key", "retry"]).map((f) => f.label)).toEqual(["Review the new key…"]);
    // An action this place cannot carry out is not offered.
    expect(offered(s, ["retry"])).toEqual([]);
  });

  it("shows a newer engine's code by its message", () => {
    const s = say({ code: "unknown", message: "a newer engine's words" })!;
    expect(s).toEqual({ title: "", sentence: "a newer engine's words", fixes: [] });
    expect(say(null)).toBeNull();
  });

  it("says a VM's last failure only while it is not connected", () => {
    const vm = {
      name: "arm",
      state: "failed",
      last_error: "connection refused (--port)",
      error_code: "connection_refused",
      error_advice: { title: "The VM refused the connection", sentence: "Nothing accepts SSH connections at the VM's address and port.", fixes: [] },
    } as unknown as VmStatus;
    expect(sayStatus(vm)?.sentence).toBe("Nothing accepts SSH connections at the VM's address and port.");
    expect(sayStatus({ ...vm, state: "connected" } as VmStatus)).toBeNull();
    expect(sayStatus({ ...vm, error_advice: undefined } as VmStatus)?.sentence).toBe("connection refused (--port)");
  });
});
