"""The one exception the command line turns into a one-line message and exit code 2."""


class LessonxlError(Exception):
    """Unusable input: a missing file, a broken workbook, a missing engine, a bad option."""
