// Colour contrast, computed from the CSS tokens themselves (WCAG 2.x relative luminance): every
// colour used for text or state is at least 4.5:1 on each background it sits on, in the light and
// the dark theme; a control's off state at least 3:1 (a component, not text). And no CSS changes
// the case of text: a VM's name is shown as the user wrote it.
/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import css from "../app.css?raw";

// Every stylesheet and component, as text (Vite reads them; nothing is rendered).
const sources: Record<string, string> = {
  "app.css": css,
  ...import.meta.glob<string>(["../components/*.svelte", "../App.svelte"], { query: "?raw", import: "default", eager: true }),
};

function tokens(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of block.matchAll(/--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;/g)) out[m[1]] = m[2];
  return out;
}

const lightBlock = css.slice(css.indexOf(":root {"), css.indexOf("}", css.indexOf(":root {")));
const darkStart = css.indexOf("@media (prefers-color-scheme: dark)");
const darkBlock = css.slice(darkStart, css.indexOf("}", css.indexOf(":root {", darkStart)));
const light = tokens(lightBlock);
const themes: Record<string, Record<string, string>> = { light, dark: { ...light, ...tokens(darkBlock) } };

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const f = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}

export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

const TEXT = ["text", "muted", "ok", "warn", "bad", "idle", "accent"];
const BACKGROUNDS = ["bg", "panel", "sidebar"];

describe("colour contrast from the CSS tokens", () => {
  it("reads a known pair as WCAG does", () => {
    expect(contrast("#000000", "#ffffff")).toBeCloseTo(21, 5);
    expect(contrast("#767676", "#ffffff")).toBeGreaterThan(4.5);
  });

  for (const [theme, t] of Object.entries(themes)) {
    it(`every text and state colour is at least 4.5:1 on every background (${theme})`, () => {
      const low: string[] = [];
      for (const fg of TEXT)
        for (const bg of BACKGROUNDS) {
          expect(t[fg], `--${fg}`).toBeDefined();
          const r = contrast(t[fg], t[bg]);
          if (r < 4.5) low.push(`--${fg} ${t[fg]} on --${bg} ${t[bg]}: ${r.toFixed(2)}:1`);
        }
      const onAccent = contrast(t["accent-text"], t.accent);
      if (onAccent < 4.5) low.push(`--accent-text on --accent: ${onAccent.toFixed(2)}:1`);
      expect(low).toEqual([]);
    });

    it(`a switch's off track stands out from where it sits, at least 3:1 (${theme})`, () => {
      for (const bg of ["sidebar", "panel"]) expect(contrast(t["track-off"], t[bg])).toBeGreaterThanOrEqual(3);
    });
  }

  it("no CSS changes the case of text", () => {
    expect(Object.keys(sources).length).toBeGreaterThan(10);
    const found = Object.entries(sources)
      .filter(([, text]) => /text-transform\s*:\s*(uppercase|lowercase|capitalize)/.test(text))
      .map(([name]) => name);
    expect(found).toEqual([]);
  });
});
