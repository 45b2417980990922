"""stackplate: render and maintain a multi-service project from a Copier template.

Kept free of imports on purpose: the template's Jinja extension loads single
modules of this package (answers, markers) by file path, without the package.
"""

__version__ = "0.2.0"
