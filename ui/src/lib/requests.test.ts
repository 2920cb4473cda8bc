import { describe, expect, it } from "vitest";
import { connectionOf, profileOf, reverseOf } from "./requests";

describe("the forms as control requests", () => {
  it("a new VM's profile carries only what the form gave, trimmed", () => {
    expect(profileOf({ host: " 10.0.0.5 ", user: "  ", arch: "", jump: " bastion " })).toEqual({
      host: "10.0.0.5",
      jump: "bastion",
    });
    expect(profileOf({ host: "vm", port: 2222, user: "dev", arch: "arm64", identity: "/k", remote_socket: "/s" })).toEqual({
      host: "vm",
      port: 2222,
      user: "dev",
      arch: "arm64",
      identity: "/k",
      remote_socket: "/s",
    });
  });

  it("connection settings name every field, blanks as null", () => {
    expect(connectionOf({ host: "vm", user: " ", jump: "" })).toEqual({
      host: "vm",
      port: null,
      user: null,
      arch: null,
      identity: null,
      remote_socket: null,
      jump: null,
    });
  });

  it("a reverse spec is the VM's port first, docker: binds the bridge gateway", () => {
    expect(reverseOf("5432")).toEqual({ remote: 5432, local: 5432 });
    expect(reverseOf("15432:5432")).toEqual({ remote: 15432, local: 5432 });
    expect(reverseOf("docker:5432")).toEqual({ remote: 5432, local: 5432, bind: "docker" });
  });

  it("a bad spec fails as the engine's refusal would, code and sentence", () => {
    const refusal = (spec: string) => {
      try {
        reverseOf(spec);
      } catch (e) {
        return e;
      }
      return null;
    };
    expect(refusal("70000")).toMatchObject({ code: "config_invalid", message: expect.stringMatching(/1 to 65535/) });
    expect(refusal("1:2:3")).toMatchObject({ code: "config_invalid", message: expect.stringMatching(/REMOTE or REMOTE:LOCAL/) });
  });
});
