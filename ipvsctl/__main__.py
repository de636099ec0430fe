"""`python -m ipvsctl`: the same entry point as the console script."""

from ipvsctl.cli import main

if __name__ == "__main__":
    main()
