"""Counts how the Citus workers committed the transactions that wrote usage records:
one plain COMMIT (one worker, one phase) or PREPARE TRANSACTION (two-phase), read from
worker logs written with `log_statement = 'all'` (docs/scaling.md, "Measured").

    scripts/citus_commit_log.py /work/citus-cluster/w1.log:89 /work/citus-cluster/w2.log:39

Each argument is a log file, optionally with the number of lines to skip (the lines
already there before the run). Transactions are followed per backend pid from their
`BEGIN` to their `COMMIT` or `PREPARE TRANSACTION`.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

# "2026-12-05 07:38:39.094 UTC [23605] LOG:  statement: BEGIN ..."
_LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] LOG:  (?:statement|execute [^:]*): (.*)$")
_TABLE = re.compile(r"\b(?:INSERT INTO|UPDATE) public\.([a-z_]+?)_\d+\b")


def _transactions(path: str, skip: int) -> Counter[tuple[str, str]]:
    """(what the transaction wrote, how it committed) -> count."""
    open_writes: dict[str, set[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    with open(path, encoding="utf-8", errors="replace") as log:
        for number, line in enumerate(log):
            if number < skip:
                continue
            match = _LINE.match(line)
            if match is None:
                continue
            pid, statement = match.groups()
            if statement.startswith("BEGIN"):
                open_writes[pid] = set()
                continue
            writes = open_writes.get(pid)
            if writes is None:
                continue
            table = _TABLE.search(statement)
            if table:
                writes.add(table.group(1))
            if statement == "COMMIT" or statement.startswith("PREPARE TRANSACTION"):
                kind = "one-phase COMMIT" if statement == "COMMIT" else "PREPARE TRANSACTION"
                what = "usage" if "usage_records" in writes else "other"
                if writes:  # read-only transactions are left out
                    counts[(what, kind)] += 1
                del open_writes[pid]
            elif statement.startswith("ROLLBACK"):
                del open_writes[pid]
    return counts


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: citus_commit_log.py LOG[:LINES_TO_SKIP] ...", file=sys.stderr)
        return 2
    total: Counter[tuple[str, str]] = Counter()
    for argument in argv:
        path, _, skip = argument.partition(":")
        if not (skip or "0").isdigit():
            print(f"{argument}: the lines to skip must be a whole number", file=sys.stderr)
            return 2
        try:
            found = _transactions(path, int(skip or 0))
        except OSError as error:
            print(f"{path}: {error.strerror}", file=sys.stderr)
            return 2
        for (what, kind), count in sorted(found.items()):
            print(f"{path}: {what} transactions, {kind}: {count}")
        total.update(found)
    usage_2pc = total[("usage", "PREPARE TRANSACTION")]
    print(
        f"usage transactions: {total[('usage', 'one-phase COMMIT')]} one-phase, "
        f"{usage_2pc} two-phase"
    )
    return 1 if usage_2pc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
