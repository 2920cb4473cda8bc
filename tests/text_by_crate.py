#!/usr/bin/env python3
"""Resident code of a running process, by crate: which crates' machine code the process keeps in
memory. Reads /proc/PID/maps and /proc/PID/pagemap (root) for the executable's code pages and
attributes each resident 4 KiB page to the crates of the symbols in it (`nm -C`).

Usage: sudo tests/text_by_crate.py PID [TOP]
"""
import bisect
import os
import re
import struct
import subprocess
import sys
from collections import defaultdict

PAGE = os.sysconf("SC_PAGE_SIZE")


def crate_of(name):
    """The crate a demangled symbol belongs to: `<T as Trait>::f` counts as T's."""
    n = name
    while n.startswith("<"):
        n = n[1:]
    n = re.sub(r"^(&|\*const |\*mut |mut |dyn |\[|\()+", "", n)
    if "::" in n:
        head = n.split("::", 1)[0]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
            return head
    if name.startswith("aws_lc") or name.startswith("OPENSSL") or "aws_lc" in name:
        return "aws-lc (C)"
    return "(C and other)"


def main():
    pid = int(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    exe = os.readlink(f"/proc/{pid}/exe")
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == exe and "x" in parts[1]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                maps.append((lo, hi, int(parts[2], 16)))
    if not maps:
        sys.exit(f"no code mapping of {exe} in pid {pid}")
    # Symbols by file offset of their code (the executable's code is mapped at offset == vaddr
    # minus the segment's delta, which `maps` gives us).
    out = subprocess.run(["nm", "-C", "--defined-only", "-S", "-n", exe], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) [tTwW] (.*)", line)
        if m:
            syms.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    syms.sort()
    starts = [s[0] for s in syms]
    # The load bias: the first executable mapping's start minus its file offset, and the ELF's
    # virtual addresses equal file offsets plus a per-segment delta that `readelf -l` gives.
    ph = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True, check=True).stdout
    segs = []
    for line in ph.splitlines():
        p = line.split()
        if p and p[0] == "LOAD" and "E" in p[6:-1]:
            segs.append((int(p[1], 16), int(p[2], 16)))  # file offset, vaddr
    per = defaultdict(float)
    resident = 0
    total = 0
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        for lo, hi, off in maps:
            seg = next((s for s in segs if s[0] <= off), None)
            delta = seg[1] - seg[0] if seg else 0
            npages = (hi - lo) // PAGE
            pm.seek(lo // PAGE * 8)
            data = pm.read(npages * 8)
            for i in range(npages):
                total += PAGE
                (entry,) = struct.unpack_from("<Q", data, i * 8)
                if not entry >> 63 & 1:
                    continue
                resident += PAGE
                va = off + i * PAGE + delta
                # Share the page among the symbols overlapping it, by bytes.
                j = max(bisect.bisect_right(starts, va) - 1, 0)
                covered = 0
                while j < len(syms) and syms[j][0] < va + PAGE:
                    s, size, name = syms[j]
                    a, b = max(s, va), min(s + size, va + PAGE)
                    if b > a:
                        per[crate_of(name)] += b - a
                        covered += b - a
                    j += 1
                if covered < PAGE:
                    per["(padding, unnamed)"] += PAGE - covered
    mb = 1024 * 1024
    print(f"{exe} (pid {pid}): {resident / mb:.1f} MB of {total / mb:.1f} MB code resident")
    for crate, b in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {b / mb:7.2f} MB  {crate}")


if __name__ == "__main__":
    main()
