"""`lessonxl verify --annotate DIR`: a marked-up copy of a workbook whose values differ from torch.

The copy is the user's file with three kinds of parts edited as text and every other part copied byte for
byte (charts, drawings, names, formulas and saved values are untouched): the styles gain two fills and a
filled twin of each cell format a marked cell uses; each marked cell's `s` attribute points at its twin;
a sheet with a mistake gains a comments part and the VML drawing that shows those comments in Excel, with
their relationships and content types. Mistakes (`diagnose`'s findings) are filled red, each with a
comment: the sheet's value, torch's, and what lessonxl's formula gives there from the sheet's own values;
cells that differ only because they read one are filled pink.

openpyxl is not used to write the copy: it drops the charts and drawings it does not model.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from typing import Collection, Mapping
from xml.sax.saxutils import escape, quoteattr

from .errors import LessonxlError
from .references import a1, row_col

MARK = b"lessonxl verify --annotate"  # the zip comment of a copy, so that only such a file is replaced
RED, PINK = "FFFF6B6B", "FFFFD6D6"

_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
_COMMENTS = f"{_RELATIONSHIPS}/comments"
_VML = f"{_RELATIONSHIPS}/vmlDrawing"
_COMMENTS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
_VML_TYPE = "application/vnd.openxmlformats-officedocument.vmlDrawing"
#: What follows <legacyDrawing> in a worksheet (CT_Worksheet's sequence): it goes before the first of these.
_AFTER_LEGACY = ("legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems",
                 "tableParts", "extLst")


def check_target(source: Path, target: Path) -> None:
    """Refuse a copy that would replace the user's own file, or a file that is not a copy made here."""
    try:
        if target.exists() and source.resolve() == target.resolve():
            raise LessonxlError(f"--annotate: {target} is the file being verified; choose another folder")
    except OSError:
        pass
    if target.is_dir():
        raise LessonxlError(f"--annotate: {target} is a folder")
    if target.exists():
        try:
            with zipfile.ZipFile(target) as archive:
                ours = archive.comment == MARK
        except (OSError, zipfile.BadZipFile):
            ours = False
        if not ours:
            raise LessonxlError(f"--annotate: {target} exists and is not a copy lessonxl marked up; choose "
                                "another folder")


def write(source: Path, target: Path, parts: Mapping[str, str], marks: Mapping[tuple[str, int, int], str],
          comments: Mapping[tuple[str, int, int], str], shown: Collection[tuple[str, int, int]] = ()) -> None:
    """Write `target`: the workbook `source` with each cell of `marks` ((sheet, row, col) -> RED or PINK)
    filled, and each cell of `comments` given that comment, shown open where in `shown` (else on
    hovering). `parts`: worksheet part -> sheet."""
    by_sheet: dict[str, dict[tuple[int, int], str]] = {}
    for (sheet, row, col), color in marks.items():
        by_sheet.setdefault(sheet, {})[row, col] = color
    noted: dict[str, dict[tuple[int, int], str]] = {}
    for (sheet, row, col), text in comments.items():
        noted.setdefault(sheet, {})[row, col] = text
    part_of = {sheet: part for part, sheet in parts.items()}
    with zipfile.ZipFile(source) as old:
        names = old.namelist()
        data = {name: old.read(name) for name in names}
        infos = {info.filename: info for info in old.infolist()}
    added: dict[str, bytes] = {}
    styles_part = "xl/styles.xml" if "xl/styles.xml" in data else None
    styles = _Styles(data[styles_part].decode("utf-8")) if styles_part else None
    vml_ids = _vml_ids(data)
    for sheet, cells in by_sheet.items():
        part = part_of.get(sheet)
        if part not in data or styles is None:
            continue
        data[part] = _restyle(data[part].decode("utf-8"), cells, styles).encode("utf-8")
    for sheet, cells in noted.items():
        part = part_of.get(sheet)
        if part not in data:
            continue
        xml = data[part].decode("utf-8")
        if re.search(r"<(?:\w+:)?legacyDrawing\b", xml):
            continue  # the sheet has comments (or controls) of its own: its cells are still filled
        number = 1 + max([0, *(int(n) for part in [*data, *added]
                               for n in re.findall(r"^xl/comments(\d+)\.xml$", part))])
        vml_id = max([0, *vml_ids]) + 1
        vml_ids.append(vml_id)
        comments_part, vml_part = f"xl/comments{number}.xml", f"xl/drawings/vmlDrawing{number}.vml"
        rels_part = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
        rels = data.get(rels_part, b"").decode("utf-8") or \
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_PACKAGE}"></Relationships>'
        comments_id, vml_rel = _free_ids(rels, 2)
        folder = posixpath.dirname(part)
        rels = rels.replace("</Relationships>",
                            f'<Relationship Id="{comments_id}" Type="{_COMMENTS}" '
                            f'Target="{posixpath.relpath(comments_part, folder)}"/>'
                            f'<Relationship Id="{vml_rel}" Type="{_VML}" '
                            f'Target="{posixpath.relpath(vml_part, folder)}"/></Relationships>')
        (data if rels_part in data else added)[rels_part] = rels.encode("utf-8")
        data[part] = _with_legacy_drawing(xml, vml_rel).encode("utf-8")
        ordered = sorted(cells.items())
        added[comments_part] = _comments_xml(ordered).encode("utf-8")
        added[vml_part] = _vml_xml(ordered, vml_id, {place[1:] for place in shown if place[0] == sheet}).encode("utf-8")
        data["[Content_Types].xml"] = _content_types(data["[Content_Types].xml"].decode("utf-8"),
                                                     comments_part).encode("utf-8")
    if styles is not None:
        data[styles_part] = styles.xml().encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
            for name in names:
                new.writestr(infos[name], data[name])
            for name, content in added.items():
                new.writestr(name, content)
            new.comment = MARK
        partial.replace(target)
    except OSError as error:
        raise LessonxlError(f"--annotate: cannot write {target} ({error.strerror or error})") from None
    finally:
        partial.unlink(missing_ok=True)


class _Styles:
    """styles.xml with fills and filled twins of cell formats added (`twin`), written back by `xml`."""

    def __init__(self, xml: str):
        self.text = xml
        self.new_fills: list[str] = []
        self.new_xfs: list[str] = []
        self.twins: dict[tuple[int, str], int] = {}
        self.fill_ids: dict[str, int] = {}
        fills = re.search(r"<((?:\w+:)?)fills\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?fills>)", xml, re.S)
        self.prefix = re.search(r"<((?:\w+:)?)styleSheet\b", xml).group(1) if re.search(
            r"<((?:\w+:)?)styleSheet\b", xml) else ""
        self.fill_count = len(re.findall(r"<(?:\w+:)?fill\b", fills.group(2) or "")) if fills else 0
        xfs = re.search(r"<(?:\w+:)?cellXfs\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?cellXfs>)", xml, re.S)
        self.xfs = re.findall(r"<(?:\w+:)?xf\b[^>]*?(?:/>|>.*?</(?:\w+:)?xf>)", xfs.group(1) or "", re.S) \
            if xfs else []

    def twin(self, style: int, color: str) -> int:
        """The index of a cell format like `style`, filled with `color`."""
        key = (style, color)
        if key not in self.twins:
            if color not in self.fill_ids:
                self.fill_ids[color] = self.fill_count + len(self.new_fills)
                p = self.prefix
                self.new_fills.append(f'<{p}fill><{p}patternFill patternType="solid"><{p}fgColor rgb="{color}"/>'
                                      f'<{p}bgColor indexed="64"/></{p}patternFill></{p}fill>')
            base = self.xfs[style] if style < len(self.xfs) else f'<{self.prefix}xf numFmtId="0" fontId="0" ' \
                f'fillId="0" borderId="0" xfId="0"/>'
            self.twins[key] = len(self.xfs) + len(self.new_xfs)
            self.new_xfs.append(_with_attributes(base, fillId=str(self.fill_ids[color]), applyFill="1"))
        return self.twins[key]

    def xml(self) -> str:
        if not self.new_xfs:
            return self.text
        text, p = self.text, self.prefix
        if self.new_fills:
            text = _opened(text, "fills")
            if not re.search(r"<(?:\w+:)?fills\b", text):  # a styles part without fills (rare): after the fonts
                text = re.sub(r"(</(?:\w+:)?fonts>)", rf"\1<{p}fills></{p}fills>", text, count=1)
            text = _appended(text, "fills", self.new_fills, self.fill_count + len(self.new_fills))
        text = _opened(text, "cellXfs")
        return _appended(text, "cellXfs", self.new_xfs, len(self.xfs) + len(self.new_xfs))


def _opened(text: str, tag: str) -> str:
    """`<tag .../>` written as an element that can take children."""
    return re.sub(rf"<((?:\w+:)?{tag})\b([^>]*?)/>", r"<\1\2></\1>", text, count=1)


def _appended(text: str, tag: str, children: list[str], count: int) -> str:
    """`children` added at the end of the element `tag`, its count attribute set to `count`."""
    text = re.sub(rf"</((?:\w+:)?{tag})>", lambda m: "".join(children) + m.group(0), text, count=1)
    return re.sub(rf"<((?:\w+:)?{tag})\b([^>]*)>",
                  lambda m: f'<{m.group(1)}{_COUNT.sub("", m.group(2))} count="{count}">', text, count=1)


_COUNT = re.compile(r'\s*\bcount="[^"]*"')


def _with_attributes(element: str, **attributes: str) -> str:
    """An element's text with attributes set (replaced where present)."""
    head_end = element.index(">")
    if element[head_end - 1] == "/":
        head_end -= 1
    head, rest = element[:head_end], element[head_end:]
    for name, value in attributes.items():
        if re.search(rf'\s{name}="[^"]*"', head):
            head = re.sub(rf'(\s){name}="[^"]*"', rf'\1{name}="{value}"', head)
        else:
            head += f' {name}="{value}"'
    return head + rest


_CELL_TAG = re.compile(r'<((?:\w+:)?)c\b([^>]*?)(/?)>')
_R = re.compile(r'\br="([^"]*)"')
_S = re.compile(r'\ss="(\d+)"')


def _restyle(xml: str, cells: Mapping[tuple[int, int], str], styles: _Styles) -> str:
    """The worksheet with each cell of `cells` given the filled twin of its format."""
    def edit(match: re.Match) -> str:
        at = _R.search(match.group(2))
        try:
            color = cells.get(row_col(at.group(1))) if at else None
        except ValueError:  # an r attribute that is no cell address: not a cell to mark
            color = None
        if color is None:
            return match.group(0)
        found = _S.search(match.group(2))
        style = styles.twin(int(found.group(1)) if found else 0, color)
        attributes = _S.sub("", match.group(2)) + f' s="{style}"'
        return f"<{match.group(1)}c{attributes}{match.group(3)}>"
    return _CELL_TAG.sub(edit, xml)


def _with_legacy_drawing(xml: str, rel_id: str) -> str:
    """The worksheet with <legacyDrawing r:id=...> where the schema puts it."""
    root = re.search(r"<((?:\w+:)?)worksheet\b([^>]*)>", xml)
    prefix = root.group(1)
    relationship = next((m.group(1) for m in re.finditer(r'xmlns:(\w+)="([^"]*)"', root.group(2))
                         if m.group(2) == _RELATIONSHIPS), None)
    if relationship is None:
        relationship = "r" if "xmlns:r=" not in root.group(2) else "lxrel"
        xml = xml[:root.end() - 1] + f' xmlns:{relationship}="{_RELATIONSHIPS}"' + xml[root.end() - 1:]
    element = f'<{prefix}legacyDrawing {relationship}:id="{rel_id}"/>'
    following = re.search(r"<(?:\w+:)?(?:" + "|".join(_AFTER_LEGACY) + r")\b|</(?:\w+:)?worksheet>", xml)
    return xml[:following.start()] + element + xml[following.start():]


def _free_ids(rels: str, count: int) -> list[str]:
    taken = set(re.findall(r'\bId="([^"]*)"', rels))
    found, number = [], 1
    while len(found) < count:
        candidate = f"rIdLx{number}"
        if candidate not in taken:
            found.append(candidate)
        number += 1
    return found


def _vml_ids(data: Mapping[str, bytes]) -> list[int]:
    """The shape-id blocks (o:idmap) the workbook's VML drawings already use."""
    ids = []
    for name, content in data.items():
        if name.endswith(".vml"):
            for block in re.findall(rb'<o:idmap[^>]*data="([0-9, ]+)"', content):
                ids += [int(n) for n in re.findall(rb"[0-9]+", block)]
    return ids


def _comments_xml(cells: list[tuple[tuple[int, int], str]]) -> str:
    entries = "".join(
        f'<comment ref="{a1(row, col)}" authorId="0"><text><r><rPr><sz val="9"/><rFont val="Tahoma"/></rPr>'
        f'<t xml:space="preserve">{escape(text)}</t></r></text></comment>' for (row, col), text in cells)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f'<authors><author>lessonxl verify</author></authors><commentList>{entries}</commentList></comments>')


def _vml_xml(cells: list[tuple[tuple[int, int], str]], block: int, shown: Collection[tuple[int, int]] = ()) -> str:
    """The VML drawing that shows the comments in Excel: a hidden note per cell (open where `shown`)."""
    shapes = []
    for index, ((row, col), _) in enumerate(cells):
        r, c = row - 1, col - 1  # 0-based, as the anchor counts
        visible = (row, col) in shown
        shapes.append(
            f'<v:shape id="_x0000_s{block * 1024 + 1 + index}" type="#_x0000_t202" '
            'style="position:absolute;margin-left:59.25pt;margin-top:1.5pt;width:180pt;height:72pt;'
            f'z-index:{index + 1};visibility:{"visible" if visible else "hidden"}" fillcolor="#ffffe1" '
            'o:insetmode="auto"><v:fill color2="#ffffe1"/><v:shadow on="t" color="black" obscured="t"/>'
            '<v:path o:connecttype="none"/><v:textbox style="mso-direction-alt:auto">'
            '<div style="text-align:left"></div></v:textbox>'
            '<x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
            f'<x:Anchor>{c + 1}, 15, {max(r - 1, 0)}, 10, {c + 4}, 15, {max(r - 1, 0) + 5}, 4</x:Anchor>'
            f'<x:AutoFill>False</x:AutoFill><x:Row>{r}</x:Row><x:Column>{c}</x:Column>'
            f'{"<x:Visible/>" if visible else ""}</x:ClientData></v:shape>')
    return ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:x="urn:schemas-microsoft-com:office:excel">'
            f'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{block}"/></o:shapelayout>'
            '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
            '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>'
            + "".join(shapes) + "</xml>")


def _content_types(xml: str, comments_part: str) -> str:
    if not re.search(r'<Default\b[^>]*\bExtension="vml"', xml, re.I):
        xml = xml.replace("</Types>", f'<Default Extension="vml" ContentType="{_VML_TYPE}"/></Types>')
    return xml.replace("</Types>", f'<Override PartName={quoteattr("/" + comments_part)} '
                                   f'ContentType="{_COMMENTS_TYPE}"/></Types>')
