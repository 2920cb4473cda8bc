#!/usr/bin/env python3
"""Draws Tether's icons (app icon and tray state icons) as PNGs, with no image library.

The glyph is a tether: two rings joined by a line. Tray icons put a state dot on it. Every
colour sits on a contrasting halo so the icon reads on light and dark menu bars; macOS gets
monochrome template images instead (the OS tints them).
Run: python3 icons/make.py   (writes next to this file)
"""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 4  # supersampling per axis


def png(path, w, h, pixels):
    with open(path, "wb") as f:
        f.write(png_bytes(w, h, pixels))


def png_bytes(w, h, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * w * 4:(y + 1) * w * 4]) for y in range(h))
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    return data + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def ico(path, sizes):
    """A Windows icon holding one PNG per size (PNG entries: Windows Vista and later)."""
    images = [png_bytes(s, s, app_icon(s)) for s in sizes]
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for s, data in zip(sizes, images):
        # A size of 256 is written as 0.
        out += struct.pack("<BBBBHHII", s % 256, s % 256, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    with open(path, "wb") as f:
        f.write(out + b"".join(images))


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def render(size, layers):
    """layers: list of (inside(x, y) -> bool, (r, g, b, a)) painted in order, coords in 0..1."""
    out = [0] * (size * size * 4)
    for y in range(size):
        for x in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SS):
                for sx in range(SS):
                    u = (x + (sx + 0.5) / SS) / size
                    v = (y + (sy + 0.5) / SS) / size
                    col = (0, 0, 0, 0)
                    for inside, c in layers:
                        if inside(u, v):
                            col = c
                    a = col[3] / 255.0
                    acc[0] += col[0] * a
                    acc[1] += col[1] * a
                    acc[2] += col[2] * a
                    acc[3] += a
            n = SS * SS
            alpha = acc[3] / n
            i = (y * size + x) * 4
            if alpha > 0:
                out[i:i + 4] = [round(acc[0] / acc[3]), round(acc[1] / acc[3]), round(acc[2] / acc[3]), round(alpha * 255)]
    return out


def ring(cx, cy, r, w):
    return lambda u, v: abs(math.hypot(u - cx, v - cy) - r) <= w / 2


def disc(cx, cy, r):
    return lambda u, v: math.hypot(u - cx, v - cy) <= r


def line(ax, ay, bx, by, w):
    return lambda u, v: seg_dist(u, v, ax, ay, bx, by) <= w / 2


def glyph(color, halo, scale=1.0, dx=0.0, dy=0.0):
    """The tether glyph: two rings joined by a line, on a halo of `halo`."""
    a = (0.30, 0.70)
    b = (0.70, 0.30)
    shapes = []
    for c, w in ((halo, 0.16), (color, 0.09)):
        # The line meets each ring at its edge, not its centre.
        k = 0.14 / math.sqrt(2)
        shapes.append((line((a[0] + k) * scale + dx, (a[1] - k) * scale + dy, (b[0] - k) * scale + dx, (b[1] + k) * scale + dy, w * scale), c))
        shapes.append((ring(a[0] * scale + dx, a[1] * scale + dy, 0.14 * scale, w * scale), c))
        shapes.append((ring(b[0] * scale + dx, b[1] * scale + dy, 0.14 * scale, w * scale), c))
    return shapes


INK = (32, 38, 46, 255)
WHITE = (255, 255, 255, 255)
STATES = {
    "connected": (34, 163, 90, 255),
    "degraded": (230, 150, 20, 255),
    "disconnected": (128, 136, 146, 255),
    "error": (214, 48, 49, 255),
}


def app_icon(size):
    # A rounded square.
    bg = lambda u, v: math.hypot(max(abs(u - 0.5) - 0.30, 0), max(abs(v - 0.5) - 0.30, 0)) <= 0.14
    layers = [(bg, (24, 30, 40, 255))]
    layers += glyph((90, 200, 250, 255), (24, 30, 40, 255), 0.8, 0.1, 0.1)
    return render(size, layers)


def tray_icon(size, state):
    color = STATES[state]
    layers = glyph(INK if state != "disconnected" else STATES["disconnected"], WHITE)
    # State dot, bottom right, with a white ring so it reads on any bar colour.
    layers.append((disc(0.78, 0.78, 0.21), WHITE))
    layers.append((disc(0.78, 0.78, 0.15), color))
    return render(size, layers)


def template_icon(size, state):
    black = (0, 0, 0, 255)
    layers = [(f, black) for f, c in glyph(black, (0, 0, 0, 0)) if c == black]
    if state in ("connected", "error", "degraded"):
        layers.append((disc(0.78, 0.78, 0.15), black))
    else:
        layers.append((ring(0.78, 0.78, 0.12, 0.06), black))
    return render(size, layers)


def main():
    for size, name in ((32, "32x32.png"), (128, "128x128.png"), (512, "icon.png")):
        png(os.path.join(HERE, name), size, size, app_icon(size))
    ico(os.path.join(HERE, "icon.ico"), (16, 24, 32, 48, 64, 256))
    for state in STATES:
        png(os.path.join(HERE, f"tray-{state}.png"), 44, 44, tray_icon(44, state))
        png(os.path.join(HERE, f"tray-{state}-template.png"), 44, 44, template_icon(44, state))


if __name__ == "__main__":
    main()
