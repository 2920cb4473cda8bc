// A failure in the window's words. The engine sends, with every error, advice made from the
// error's code and facts (tether-core's `advice` module): a title, a sentence that says what
// happened and what to do, and the actions that resolve it. The window shows that, never the
// engine's message, which is the CLI's wording; only a code from a newer engine, which has no
// advice here, is shown by its message.
import type { Fix, FixAction } from "./engine.gen";
import type { IpcError, VmStatus } from "./types";

export type Said = { title: string; sentence: string; fixes: Fix[] };

/** What to show for a failed command. */
export function say(err: IpcError | null | undefined): Said | null {
  if (!err) return null;
  if (err.advice) return { title: err.advice.title, sentence: err.advice.sentence, fixes: err.advice.fixes ?? [] };
  return { title: "", sentence: err.message, fixes: [] };
}

/** What to show for a VM's last failure, if it has one and is not connected. */
export function sayStatus(vm: VmStatus): Said | null {
  if (vm.state === "connected" || !vm.last_error) return null;
  const a = vm.error_advice;
  if (a) return { title: a.title, sentence: a.sentence, fixes: a.fixes ?? [] };
  return { title: "", sentence: vm.last_error, fixes: [] };
}

/** The actions a place in the window can carry out; the others are not offered there. */
export function offered(said: Said | null, can: readonly FixAction[]): Fix[] {
  return (said?.fixes ?? []).filter((f) => can.includes(f.action));
}
