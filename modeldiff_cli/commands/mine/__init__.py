"""`modeldiff mine`: which tokens did fine-tuning promote or suppress? (Registers a light Typer group.)"""


def register(app) -> None:
    from .cli import mine_app

    app.add_typer(mine_app, name="mine")
