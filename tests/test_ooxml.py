"""Every generated workbook is valid Office Open XML: each of its parts checked against the schemas and
the semantic rules of Microsoft's Open XML SDK, as openxml-audit applies them (a pure-Python port of
the SDK's validator, calibrated against SDK 3.5.1: no .NET, nothing downloaded at run time).

Excel "repairs" a file that breaks them on opening, dropping what it cannot read; LibreOffice opens it
without a word, so the engine tests cannot see this. Two file formats: Excel 2010, the oldest Excel the
workbooks are for, and Microsoft 365, the newest.
"""

from __future__ import annotations

import zipfile

import pytest
from openxml_audit import FileFormat, OpenXmlValidator

from conftest import NAMES, rewrite_part

FORMATS = {"office2010": FileFormat.OFFICE_2010, "microsoft365": FileFormat.MICROSOFT_365}


@pytest.fixture(scope="module")
def validators() -> dict[str, OpenXmlValidator]:
    """One validator per file format, every finding kept (max_errors=0: no limit)."""
    return {name: OpenXmlValidator(file_format=fmt, max_errors=0) for name, fmt in FORMATS.items()}


def findings(validator: OpenXmlValidator, path) -> list[str]:
    """Every finding (errors, warnings and notes alike), as `part:element path: what is wrong`."""
    return [f"{error.severity.value} {error}" for error in validator.validate(path).errors]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_every_part_is_valid_ooxml(generated, validators, name, fmt):
    assert findings(validators[fmt], generated[name]) == []


def test_the_check_sees_data_labels_without_their_flags(generated, validators, tmp_path):
    """The check itself: the movie chart's data labels as lessonxl 0.4.0 wrote them (custom labels from
    cells and no show flag: a <c:dLbls> without the sequence the schema requires) must be found."""
    source = generated["collab_filter"]
    with zipfile.ZipFile(source) as archive:
        charts = [name for name in archive.namelist()
                  if name.startswith("xl/charts/") and b"<c:scatterChart>" in archive.read(name)]
    assert len(charts) == 1
    unflagged = tmp_path / "unflagged.xlsx"
    rewrite_part(source, unflagged, charts[0], lambda xml: xml.replace('<c:showVal val="1"/>', ""))
    dlbls = "/chartSpace[1]/chart[1]/plotArea[1]/scatterChart[1]/ser[1]/dLbls[1]"
    assert findings(validators["office2010"], unflagged) == [
        f"error [schema] /{charts[0]}:{dlbls}: Required sequence content is missing"]
