"""Orders from the platforms: their order exports read (``parsing``), matched to a session's
products and stored as the platform's record of the session (``service``).

Nothing here imports Flask.
"""
