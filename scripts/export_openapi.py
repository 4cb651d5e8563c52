"""Write the hub's OpenAPI document to ``openapi/openapi.json``, or check that it is current.

Usage::

    python scripts/export_openapi.py           # regenerate the file
    python scripts/export_openapi.py --check   # exit 1 when the file differs from the code

The output is deterministic (sorted keys, two-space indent, UTF-8, trailing newline) so that a
diff of the committed file shows exactly what changed in the API.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "openapi" / "openapi.json"


def build_spec() -> dict[str, Any]:
    """Build the OpenAPI document from the application factory."""
    # The repository root goes first so the working tree is used even without an editable install.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from app.main import create_app

    spec: dict[str, Any] = create_app().openapi()
    return spec


def render(spec: dict[str, Any]) -> str:
    """Serialise the document exactly as it is committed."""
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``openapi/openapi.json``, or with ``--check`` report whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 when openapi/openapi.json differs from the code",
    )
    args = parser.parse_args(argv)

    fresh = render(build_spec())
    relative = OUTPUT.relative_to(REPO_ROOT).as_posix()

    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
        if current != fresh:
            print(
                f"{relative} 与代码不一致，请运行 make openapi / "
                f"{relative} is out of date, run `make openapi`",
                file=sys.stderr,
            )
            return 1
        return 0

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(fresh, encoding="utf-8")
    print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
