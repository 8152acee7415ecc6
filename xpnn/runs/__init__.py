"""The runs of ``xpnn train``, below the command line.

``fields``: the metadata a settings field carries (help, flag, choices, its kind of
value) and the one check of a settings object; ``registry``: run name -> settings class
and the function that runs it; ``options``: the ``argparse`` options generated from a
settings class. The settings classes themselves are ``xpnn.course.settings``. This
package imports nothing at its top, so the settings may import ``fields``.
"""
