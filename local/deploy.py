"""`make deploy`: `sam deploy --guided` the first time, then plain `sam deploy` with the answers it saved.

The guided deploy asks for the stack name, the region and every template parameter, and saves the answers
as `parameter_overrides` in samconfig.toml's `[default.deploy.parameters]`; from then on `sam deploy` reads
them, so a redeploy asks nothing but the change set's confirmation.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"


def deploy_command(samconfig: Path = SAMCONFIG) -> list[str]:
    config = tomllib.loads(samconfig.read_text()) if samconfig.exists() else {}
    saved = config.get("default", {}).get("deploy", {}).get("parameters", {})
    return ["sam", "deploy"] if "parameter_overrides" in saved else ["sam", "deploy", "--guided"]


def main() -> None:
    command = deploy_command()
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)  # noqa: S606 - sam from the virtualenv on PATH, fixed arguments


if __name__ == "__main__":
    main()
