"""The error every command raises for a failure the user can fix."""


class UserError(Exception):
    """A failure the user can fix; the message says how, in one line."""
