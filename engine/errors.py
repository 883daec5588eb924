"""The one exception type users see as a single clear line (the CLI prints it without a traceback)."""


class UserError(Exception):
    """Bad input or an impossible request; the message names the file, row or field at fault."""
