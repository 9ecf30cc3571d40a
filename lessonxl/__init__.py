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

from .api import Workbook, generate, read, verify, watch  # noqa: E402
from .errors import UsageError as LessonxlError  # noqa: E402
from .report import Report, Reports  # noqa: E402

__all__ = ["generate", "verify", "watch", "read", "Workbook", "Report", "Reports", "LessonxlError", "__version__"]
