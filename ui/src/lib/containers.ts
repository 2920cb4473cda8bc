// The containers view's grouping: Compose projects together, each with its counts. Pure, so it
// is unit-tested.
import type { ContainerView } from "./types";

export interface Group {
  /** The Compose project; null for containers of no project. */
  project: string | null;
  containers: ContainerView[];
  running: number;
}

/** Containers of no project first, then each project by name; order within a group is kept. */
export function groupByProject(list: ContainerView[]): Group[] {
  const loose: ContainerView[] = [];
  const projects = new Map<string, ContainerView[]>();
  for (const c of list) {
    if (c.project) projects.set(c.project, [...(projects.get(c.project) ?? []), c]);
    else loose.push(c);
  }
  const running = (cs: ContainerView[]) => cs.filter((c) => c.state === "running").length;
  const groups: Group[] = loose.length ? [{ project: null, containers: loose, running: running(loose) }] : [];
  for (const name of [...projects.keys()].sort()) {
    const cs = projects.get(name)!;
    groups.push({ project: name, containers: cs, running: running(cs) });
  }
  return groups;
}
