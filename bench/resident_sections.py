#!/usr/bin/env python3
"""Which parts of the plugin's binary are resident: KiB of resident pages per ELF section.

Usage (as root, or as the plugin's user): python3 bench/resident_sections.py PID [BINARY]

PID is a running plugin's process id; BINARY defaults to its /proc/PID/exe. Each page of the
binary's mappings is looked up in /proc/PID/pagemap (bit 63: present) and attributed to the
section (from `readelf -SW`) whose address range holds it. docs/performance.md says how the
figures were taken (a plugin started by a bench, read while it is idle).
"""

import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def sections(binary):
    """(name, address, size) of every allocated section."""
    found = []
    listing = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if match and int(match.group(2), 16):
            found.append((match.group(1), int(match.group(2), 16), int(match.group(3), 16)))
    return found


def mappings(pid, binary):
    """The load base and the (start, end) of every mapping of `binary` in process `pid`."""
    base, ranges = None, []
    real = os.path.realpath(binary)
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == real:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if base is None:
                    base = start - int(fields[2], 16)
                ranges.append((start, end))
    if base is None:
        sys.exit(f"{binary} is not mapped in process {pid}")
    return base, ranges


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    pid = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) == 3 else os.readlink(f"/proc/{pid}/exe")
    table = sections(binary)
    base, ranges = mappings(pid, binary)
    resident = {}
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for start, end in ranges:
            for page in range(start, end, PAGE):
                pagemap.seek(page // PAGE * 8)
                (entry,) = struct.unpack("<Q", pagemap.read(8))
                if entry >> 63:
                    offset = page - base
                    name = next((n for n, a, s in table if a <= offset < a + s), "(between sections)")
                    resident[name] = resident.get(name, 0) + PAGE // 1024
    for name, _, size in table:
        if name in resident:
            print(f"{name:22} {resident[name]:6} KiB resident of {size // 1024:6} KiB")
    if "(between sections)" in resident:
        print(f"{'(between sections)':22} {resident['(between sections)']:6} KiB")
    print(f"{'total':22} {sum(resident.values()):6} KiB")


if __name__ == "__main__":
    main()
