"""``python -m modeldiff_cli``: the `modeldiff` command line, for launchers that take a module
(``accelerate launch -m modeldiff_cli mine ...``, ``torchrun -m modeldiff_cli ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
