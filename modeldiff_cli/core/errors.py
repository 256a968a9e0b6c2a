"""One exception type for mistakes the user can fix; the CLI renders it as one line and exits 2."""


class UserError(Exception):
    """Bad input (a flag, a file, a model). Rendered as ``error: <message>`` on stderr, exit code 2."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
