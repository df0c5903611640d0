"""``python -m trio_lifespan``: the ``trio-lifespan`` command."""

from ._cli import console_script

if __name__ == "__main__":  # pragma: no branch - only ever run as main
    console_script()
