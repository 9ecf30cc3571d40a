#!/usr/bin/env bash
# Install what lessonxl needs on a Debian-like machine with Python 3.11, skipping what is there:
# LibreOffice (the recalculation engine) and its Python bridge (python3-uno), Gnumeric (the tests' second
# engine), then a virtual environment in .venv with torch (CPU build 2.13.0, pinned so pip takes the local
# wheel instead of a multi-GB CUDA build) and the package.
set -euo pipefail
cd "$(dirname "$0")/.."

# LibreOffice and its Python bridge (python3-uno, built for the system python3: verify drives LibreOffice
# through it, lessonxl/unobridge.py).
PACKAGES=()
command -v soffice >/dev/null 2>&1 || command -v libreoffice >/dev/null 2>&1 || PACKAGES+=(libreoffice-calc-nogui)
[ -n "${LESSONXL_UNO_PYTHON:-}" ] || /usr/bin/python3 -c "import uno" >/dev/null 2>&1 || PACKAGES+=(python3-uno)
# Gnumeric's ssconvert: the tests recalculate every workbook with it too (tests/test_gnumeric.py), so that
# a formula only LibreOffice understands cannot pass. Without its recommends: 17 packages, 26 MB to
# fetch, 89 MB installed (with them, 252 packages).
LEAN=()
command -v ssconvert >/dev/null 2>&1 || LEAN+=(gnumeric)
if [ $((${#PACKAGES[@]} + ${#LEAN[@]})) -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        [ ${#PACKAGES[@]} -eq 0 ] || \
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
        [ ${#LEAN[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${LEAN[@]}" >/dev/null
    else
        [ ${#PACKAGES[@]} -eq 0 ] || echo "setup: install ${PACKAGES[*]} yourself (https://www.libreoffice.org;" \
             "LibreOffice's own installer brings its Python bridge); verify needs soffice and a Python that" \
             "can import uno" >&2
        [ ${#LEAN[@]} -eq 0 ] || echo "setup: install Gnumeric yourself (http://www.gnumeric.org) for the" \
             "tests' second engine, ssconvert; without it tests/test_gnumeric.py is skipped (and fails under CI)" >&2
    fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>/dev/null \
    || .venv/bin/python -m pip install -q --disable-pip-version-check "torch>=2.1,<3"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
