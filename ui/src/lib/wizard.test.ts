import { describe, expect, it } from "vitest";
import { back, next, steps, suggestName, vmProblems } from "./wizard";

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
  const good = { name: "arm", host: "10.0.0.5", user: "", port: "", arch: "arm64", socket: "" };

  it("accepts a complete form", () => {
    expect(vmProblems(good, [])).toEqual({});
  });

  it("names each problem by field", () => {
    const p = vmProblems({ name: "-x", host: "a b", user: "", port: "70000", arch: "", socket: "relative" }, []);
    expect(Object.keys(p).sort()).toEqual(["arch", "host", "name", "port", "socket"]);
    expect(vmProblems(good, ["arm"]).name).toContain("already");
  });

  it("suggests a name from the host", () => {
    expect(suggestName("build-arm.lan")).toBe("build-arm");
    expect(suggestName("10.0.0.5")).toBe("vm-10");
    expect(suggestName("my vm")).toBe("my-vm");
  });
});
