"""lessonxl: the fast.ai lesson's spreadsheets as live-formula workbooks, proven equal to PyTorch."""

__version__ = "0.1.0"
