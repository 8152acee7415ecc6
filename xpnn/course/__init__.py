"""The course's notebooks as functions: the networks they build and the runs that
``xpnn train`` makes."""
