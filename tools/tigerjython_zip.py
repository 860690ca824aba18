# -*- coding: utf-8 -*-
"""Build the TigerJython download: a zip of the ``tcpcom`` folder, nothing else.

    python3 tools/tigerjython_zip.py [--out DIR]     (also runs under Python 2.7 and Jython)

writes ``DIR/tcpcom-VERSION-tigerjython.zip`` (DIR: ``dist``). Unpacked, it is
the one folder a TigerJython user puts beside a script (README, "Installing
in TigerJython"): ``tcpcom/`` with the library's Python modules, subpackages
included (``tcpcom/engine/``). Left out: compiled files (``*.pyc``,
``*.class``, ``__pycache__``) and the type stubs (``*.pyi``, ``py.typed``),
which only type checkers read. Entries are sorted and dated 1980-01-01, so
the same sources give the same zip. tests/jython/test_jy_install_zip.py
unpacks it in an empty folder and imports tcpcom from there.
"""
from __future__ import absolute_import, print_function

import argparse
import io
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = "tcpcom"


def version(root=ROOT):
    with io.open(os.path.join(root, FOLDER, "_version.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def library_files(root=ROOT):
    """The zip's entries: (path on disk, name in the zip), sorted by name."""
    found = []
    for here, dirs, files in os.walk(os.path.join(root, FOLDER)):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(here, name)
                arcname = os.path.relpath(path, root).replace(os.sep, "/")
                found.append((path, arcname))
    return sorted(found, key=lambda item: item[1])


def build(out_dir=None, root=ROOT):
    """Write the zip; returns its path."""
    out_dir = out_dir or os.path.join(root, "dist")
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    target = os.path.join(out_dir, "%s-%s-tigerjython.zip" % (FOLDER, version(root)))
    tmp = target + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arcname in library_files(root):
            info = zipfile.ZipInfo(arcname, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as f:
                z.writestr(info, f.read())
    if os.path.exists(target):
        os.remove(target)
    os.rename(tmp, target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the TigerJython zip of the tcpcom folder.")
    parser.add_argument("--out", help="output folder (default: dist/ in the repository)")
    args = parser.parse_args(argv)
    path = build(args.out)
    print("%s: the %s/ folder, %d files" % (path, FOLDER, len(library_files())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
