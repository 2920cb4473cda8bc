import { describe, expect, it } from "vitest";
import { conflict, parsePortMap, parseReverseMap, privilegedHint } from "./ports";

describe("parsePortMap", () => {
  it("accepts LOCAL and LOCAL:REMOTE", () => {
    expect(parsePortMap("3000")).toEqual({ ok: true, map: { local: 3000, remote: 3000 } });
    expect(parsePortMap(" 5433:5432 ")).toEqual({ ok: true, map: { local: 5433, remote: 5432 } });
  });

  it("rejects what ssh -L would", () => {
    for (const bad of ["", "0", "70000", "a", "1:", ":2", "1:2:3", "30 00"]) {
      const r = parsePortMap(bad);
      expect(r.ok, bad).toBe(false);
    }
    const r = parsePortMap("1:2:3");
    expect(r.ok ? "" : r.error).toContain("LOCAL:REMOTE");
  });
});

describe("parseReverseMap", () => {
  it("takes the VM's port first, as ssh -R does", () => {
    expect(parseReverseMap("5432")).toEqual({ ok: true, map: { remote: 5432, local: 5432 } });
    expect(parseReverseMap(" 15432:5432 ")).toEqual({ ok: true, map: { remote: 15432, local: 5432 } });
  });

  it("rejects what ssh -R would, naming the form", () => {
    for (const bad of ["", "0", "70000", "a", "1:", ":2", "1:2:3", "1:0"]) {
      expect(parseReverseMap(bad).ok, bad).toBe(false);
    }
    const r = parseReverseMap("1:2:3");
    expect(r.ok ? "" : r.error).toContain("REMOTE:LOCAL");
  });
});

describe("conflicts", () => {
  const taken = [
    { vm: "arm", local: 3000 },
    { vm: "x86", local: 8080 },
  ];
  it("names the VM that holds the port", () => {
    expect(conflict({ local: 8080, remote: 80 }, taken, "arm")).toBe("Local port 8080 is already used by x86");
    expect(conflict({ local: 3000, remote: 3000 }, taken, "arm")).toContain("already forwarded");
    expect(conflict({ local: 4000, remote: 4000 }, taken, "arm")).toBeNull();
  });

  it("warns about privileged ports", () => {
    expect(privilegedHint({ local: 80, remote: 80 })).toContain("8080");
    expect(privilegedHint({ local: 8080, remote: 80 })).toBeNull();
  });
});
