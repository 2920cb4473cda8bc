// Shared folders as the window shows them: a sentence per state, and a share name made from a
// folder's path. Pure, unit-tested.
import type { ShareView, SyncedFolder, SyncState } from "./types";

/** What a state means, in a few words. */
export function stateText(s: SyncState): string {
  switch (s) {
    case "in_sync": return "In sync";
    case "syncing": return "Syncing";
    case "scanning": return "Reading both sides";
    case "paused": return "Paused until the VM is connected";
    case "conflict": return "Conflict: both versions kept";
    case "error": return "Needs attention";
  }
}

/** The tone a state is shown in. */
export function tone(s: SyncState): "ok" | "warn" | "bad" | "muted" {
  switch (s) {
    case "in_sync": return "ok";
    case "syncing":
    case "scanning": return "muted";
    case "paused":
    case "conflict": return "warn";
    case "error": return "bad";
  }
}

/** One line about a folder: its state, and how much is on the way. */
export function folderLine(f: SyncedFolder): string {
  const on = Number(f.pending) > 0 ? ` · ${f.pending} on the way` : "";
  const n = Number(f.entries);
  return `${stateText(f.state)} · ${n} ${n === 1 ? "item" : "items"}${on}`;
}

/** A share name from a folder's path: its last name, letters, digits, - and _ only. */
export function nameFor(path: string, taken: ShareView[]): string {
  const last = path.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? "";
  let base = last.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^[-_]+/, "").slice(0, 28) || "folder";
  let name = base;
  for (let i = 2; taken.some((s) => s.name === name); i++) name = `${base}-${i}`;
  return name;
}
