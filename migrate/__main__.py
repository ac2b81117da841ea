"""``python -m migrate`` is the same as the ``jina-migrate`` console script."""

from migrate.cli import main

if __name__ == "__main__":
    main()
