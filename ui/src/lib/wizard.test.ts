import { describe, expect, it } from "vitest";
import { back, jumpsOk, next, steps, suggestName, vmProblems } from "./wizard";

describe("wizard flow", () => {
  it("verifies the host key before any password is sent", () => {
    const s = steps("generate");
    expect(s.indexOf("hostkey")).toBeLessThan(s.indexOf("install"));
    expect(s[0]).toBe("welcome");
    expect(s.at(-1)).toBe("done");
  });

  it("skips installing when ssh-agent or the user's keys are used", () => {
    expect(steps("agent")).not.toContain("install");
    expect(next("hostkey", "agent")).toBe("checks");
    expect(next("hostkey", "import")).toBe("install");
    expect(back("checks", "agent")).toBe("hostkey");
    expect(back("welcome", "agent")).toBe("welcome");
    expect(next("done", "generate")).toBe("done");
  });
});

describe("vm form", () => {
  const good = { name: "arm", host: "10.0.0.5", user: "", port: "", arch: "arm64", socket: "", jump: "" };

  it("accepts a complete form", () => {
    expect(vmProblems(good, [])).toEqual({});
  });

  it("names each problem by field", () => {
    const p = vmProblems({ name: "-x", host: "a b", user: "", port: "70000", arch: "", socket: "relative", jump: "a b" }, []);
    expect(Object.keys(p).sort()).toEqual(["arch", "host", "jump", "name", "port", "socket"]);
    expect(vmProblems(good, ["arm"]).name).toContain("already");
  });

  it("suggests a name from the host", () => {
    expect(suggestName("build-arm.lan")).toBe("build-arm");
    expect(suggestName("10.0.0.5")).toBe("vm-10");
    expect(suggestName("my vm")).toBe("my-vm");
  });
});

it("reads jump hosts as ProxyJump lists", () => {
  const good = { name: "arm", host: "10.0.0.5", user: "", port: "", arch: "arm64", socket: "", jump: "" };
  for (const jump of ["bastion", "ops@bastion.example:2222", "a, b@c:22", "[fd00::1]:22", "ssh://me@gate"])
    expect(vmProblems({ ...good, jump }, []).jump, jump).toBeUndefined();
  for (const jump of ["a b", "@gate", "gate:x", ","]) expect(vmProblems({ ...good, jump }, []).jump, jump).toBeDefined();
  expect(jumpsOk("")).toBe(false);
});
