"""Files on disk: atomic writes (``atomic``) and one owner per folder (``lock``)."""
