"""lessonxl: the fast.ai lesson's spreadsheets as live-formula workbooks, proven equal to PyTorch.

In Python (a notebook, a script):

    import lessonxl
    paths = lessonxl.generate(["graddesc"], out="my_workbooks")   # write workbooks
    reports = lessonxl.verify(paths)                              # LibreOffice vs torch, cell by cell
    reports.passed, reports.to_frame()                            # the verdict, as a DataFrame
    book = lessonxl.read("my_workbooks/graddesc.xlsx")            # inputs and recalculated values
    book.tensor("adam!slope")
    lessonxl.watch(paths)                                         # verify again at every save (Ctrl-C)

Every problem raises `lessonxl.LessonxlError`, whose message is the command line's one line.
"""

__version__ = "0.5.0"

__all__ = ["generate", "verify", "watch", "read", "Workbook", "Report", "Reports", "LessonxlError", "__version__"]


def __getattr__(name: str):
    """The public API, imported on first use: `import lessonxl` and the command line's `list` and
    `--help` stay quick, without torch, numpy or openpyxl."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import api, errors, report

    globals().update(generate=api.generate, verify=api.verify, watch=api.watch, read=api.read,
                     Workbook=api.Workbook, Report=report.Report, Reports=report.Reports,
                     LessonxlError=errors.LessonxlError)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
