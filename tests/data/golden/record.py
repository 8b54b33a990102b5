"""Re-record ``boot-golden.json`` (only when the model changes on purpose; say why in ``about``).

    python tests/data/golden/record.py "why the model changed"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from lazyaccept.cli import cli

GOLDEN = Path(__file__).resolve().parent


def main(why: str) -> None:
    path = GOLDEN / "boot-golden.json"
    doc = json.loads(path.read_text())
    for run in doc["runs"]:
        platform = run["args"][run["args"].index("--platform") + 1]
        profile = str(GOLDEN / "profiles" / f"{platform}.toml")
        res = CliRunner().invoke(cli, ["boot", *run["args"], "--profile", profile, "--json"])
        if res.exit_code != 0:
            raise SystemExit(f"{run['name']}: exit {res.exit_code}: {res.output}")
        run["result"] = json.loads(res.output)
    doc["about"] = doc["about"].rstrip(".") + f"; re-recorded when {why}."
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "the model changed on purpose")
