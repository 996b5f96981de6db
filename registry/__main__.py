"""dockyard-registry command line (filled in by the registry work)."""
import sys


def main(argv: list[str] | None = None) -> int:
    print("dockyard-registry: not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
