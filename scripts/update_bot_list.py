"""Refreshes ingest/data/bots.json (the bot list ingest/bots.py matches user agents against) from
the npm package isbot (omrilotan/isbot, Unlicense), the best-kept public list of bot user-agent
patterns, and its licence into ingest/data/bots.LICENSE.

    .venv/bin/python scripts/update_bot_list.py            # latest release
    .venv/bin/python scripts/update_bot_list.py 5.2.3      # a given version

Needs npm and node (the package is fetched with `npm pack`, its list read with node). isbot's
patterns are JavaScript regular expressions; two JavaScript-only forms are rewritten for Python's
`re` (each rewrite matches the same strings), and the script fails if any other pattern does not
compile or is not lowercase (ingest/bots.py matches case-sensitively on the lowered user agent).
Review the diff and rerun `.venv/bin/python bench/bots.py` before committing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "ingest" / "data"

# `(?<!a|b)`: JavaScript allows alternatives of different widths in a lookbehind, Python does not;
# "not preceded by a nor by b" is the same as two lookbehinds in a row.
_LOOKBEHIND_ALTERNATIVES = re.compile(r"\(\?<!([^()]*\|[^()]*)\)")
# `[\d-.]`: in a JavaScript class a hyphen after a class escape is a literal, Python refuses it.
_HYPHEN_AFTER_CLASS_ESCAPE = re.compile(r"(\[[^\]]*?\\[wdsWDS])-")


def to_python(pattern: str) -> str:
    pattern = _LOOKBEHIND_ALTERNATIVES.sub(
        lambda match: "".join(f"(?<!{part})" for part in match.group(1).split("|")), pattern
    )
    return _HYPHEN_AFTER_CLASS_ESCAPE.sub(r"\1\\-", pattern)


def check(pattern: str) -> None:
    re.compile(pattern, re.ASCII)
    # An upper-case letter that is not an escape (\W, \D, \S, \B) would never match lowered text.
    if re.search(r"(?<!\\)[A-Z]", pattern):
        raise SystemExit(f"pattern is not lowercase: {pattern!r}")


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 else "latest"
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(
            ["npm", "pack", "--silent", f"isbot@{version}"],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (archive,) = Path(work).glob("isbot-*.tgz")
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        package = Path(work) / "package"
        metadata = json.loads((package / "package.json").read_text())
        upstream = json.loads(
            subprocess.run(
                ["node", "-e", "process.stdout.write(JSON.stringify(require('./index.js').list))"],
                cwd=package,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        patterns = [to_python(pattern) for pattern in upstream]
        for pattern in patterns:
            check(pattern)
        document = {
            "source": "isbot (npm), https://github.com/omrilotan/isbot, its `list` export",
            "version": metadata["version"],
            "licence": f"{metadata['license']} (see bots.LICENSE)",
            "updated_by": "scripts/update_bot_list.py",
            "rewritten_for_python": [
                [before, after]
                for before, after in zip(upstream, patterns, strict=True)
                if before != after
            ],
            "patterns": patterns,
        }
        (DATA / "bots.json").write_text(json.dumps(document, indent=1) + "\n")
        (DATA / "bots.LICENSE").write_text((package / "LICENSE").read_text())
    print(f"bots.json from isbot {metadata['version']}: {len(patterns)} patterns")


if __name__ == "__main__":
    main()
