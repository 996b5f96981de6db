"""dockyard command line (filled in by the node work)."""
import sys


def main(argv: list[str] | None = None) -> int:
    print("dockyard: not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
