import { describe, expect, it } from "vitest";
import { groupByProject } from "./containers";
import type { ContainerView } from "./types";

const c = (name: string, state: string, project?: string, service?: string): ContainerView => ({
  id: name,
  name,
  image: "img",
  state,
  status: "",
  health: null,
  ports: [],
  cpu_percent: null,
  mem_bytes: null,
  mem_limit: null,
  project,
  service,
});

describe("groupByProject", () => {
  it("puts loose containers first, then each project by name with its counts", () => {
    const groups = groupByProject([
      c("shop-web-1", "running", "shop", "web"),
      c("solo", "exited"),
      c("blog-db-1", "running", "blog", "db"),
      c("shop-db-1", "exited", "shop", "db"),
    ]);
    expect(groups.map((g) => g.project)).toEqual([null, "blog", "shop"]);
    expect(groups[2].containers.map((x) => x.name)).toEqual(["shop-web-1", "shop-db-1"]);
    expect(groups[2].running).toBe(1);
    expect(groups[0].running).toBe(0);
  });

  it("has no loose group when every container is in a project", () => {
    expect(groupByProject([c("a", "running", "p")]).map((g) => g.project)).toEqual(["p"]);
    expect(groupByProject([])).toEqual([]);
  });
});
