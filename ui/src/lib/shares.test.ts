import { describe, expect, it } from "vitest";
import { folderLine, nameFor, stateText, tone } from "./shares";
import type { ShareView, SyncedFolder } from "./types";

const folder = (over: Partial<SyncedFolder>): SyncedFolder => ({
  laptop: "/home/me/app",
  vm: "/home/u/.local/share/tether/mirror/x/home/me/app",
  state: "in_sync",
  entries: 12,
  pending: 0,
  conflicts: [],
  problems: [],
  ...over,
});

describe("shared folders", () => {
  it("says each state in words and a tone", () => {
    expect(stateText("paused")).toMatch(/connected/);
    expect(tone("error")).toBe("bad");
    expect(tone("conflict")).toBe("warn");
    expect(tone("in_sync")).toBe("ok");
  });

  it("counts items and what is on the way", () => {
    expect(folderLine(folder({}))).toBe("In sync · 12 items");
    expect(folderLine(folder({ state: "syncing", pending: 3, entries: 1 }))).toBe("Syncing · 1 item · 3 on the way");
  });

  it("names a share after its folder, never clashing", () => {
    const taken = [{ name: "app" }] as ShareView[];
    expect(nameFor("/home/me/My App/", [])).toBe("My-App");
    expect(nameFor("/home/me/app", taken)).toBe("app-2");
    expect(nameFor("C:\\Users\\me\\src", [])).toBe("src");
    expect(nameFor("/", [])).toBe("folder");
  });
});
