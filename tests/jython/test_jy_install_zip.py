# -*- coding: utf-8 -*-
"""The TigerJython download works on its own (README, "Installing in TigerJython").

tools/tigerjython_zip.py builds the zip; it is unpacked into an empty folder
beside a classroom-style script, and that script runs in a fresh process of
this interpreter (Jython under ``jython tests/jython/run.py``) with nothing
of the repository on its path. It must import tcpcom from the unpacked
folder, report the version with ``TCPServer.getVersion()``, and make a round
trip.
"""
from __future__ import absolute_import, print_function

import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import zipfile

from jyutil import DEADLINE  # (importing jyutil also puts the repository on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import tigerjython_zip  # noqa: E402

from tcpcom import __version__  # noqa: E402

SCRIPT = u'''# -*- coding: utf-8 -*-
from __future__ import print_function
import os
from tcpcom import *
import tcpcom

print("VERSION " + TCPServer.getVersion())
print("FILE " + os.path.abspath(tcpcom.__file__))

def onServer(state, msg):
    if state == TCPServer.MESSAGE:
        server.sendMessage("echo: " + msg)

server = TCPServer(0, onServer, host="127.0.0.1")
client = TCPClient("127.0.0.1", server.getPort(), None)
reply = client.sendMessage("hi", %(deadline)s) if client.connect(%(deadline)s) else "no connection"
client.disconnect()
server.terminate()
print("REPLY " + str(reply))
'''


def run_script(folder, name, timeout):
    """Run ``name`` in ``folder`` with this interpreter and a path without the repository."""
    env = dict((k, v) for k, v in os.environ.items() if k not in ("PYTHONPATH", "JYTHONPATH"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # -S: no site-packages, where an installed (or editable) tcpcom could fill in for a
    # module missing from the zip
    p = subprocess.Popen([sys.executable, "-S", name], cwd=folder, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, p.kill)  # Python 2 has no communicate(timeout=...)
    killer.daemon = True
    killer.start()
    try:
        out = p.communicate()[0]
    finally:
        killer.cancel()
    return p.returncode, out.decode("utf-8", "replace")


class TigerJythonZip(unittest.TestCase):
    timeout = 180  # two JVM starts under Jython, on a shared machine

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tcpcom-zip-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_the_zip_holds_exactly_the_tcpcom_folder(self):
        path = tigerjython_zip.build(os.path.join(self.tmp, "dist"))
        self.assertEqual(os.path.basename(path), "tcpcom-%s-tigerjython.zip" % __version__)
        names = sorted(zipfile.ZipFile(path).namelist())
        modules = []
        for here, dirs, files in os.walk(os.path.join(ROOT, "tcpcom")):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            modules.extend(os.path.relpath(os.path.join(here, f), ROOT).replace(os.sep, "/")
                           for f in files if f.endswith(".py"))
        self.assertEqual(names, sorted(modules))
        self.assertIn("tcpcom/__init__.py", names)
        self.assertIn("tcpcom/engine/__init__.py", names)

    def test_a_script_beside_the_unpacked_folder_imports_it_and_reports_the_version(self):
        path = tigerjython_zip.build(os.path.join(self.tmp, "dist"))
        project = os.path.join(self.tmp, "myproject")  # the folder of the user's script
        os.mkdir(project)
        zipfile.ZipFile(path).extractall(project)
        self.assertEqual(sorted(os.listdir(project)), ["tcpcom"])
        with io.open(os.path.join(project, "roundtrip.py"), "w", encoding="utf-8") as f:
            f.write(SCRIPT % {"deadline": DEADLINE})
        code, out = run_script(project, "roundtrip.py", self.timeout - 30)
        self.assertEqual(code, 0, out)
        lines = dict(line.split(" ", 1) for line in out.splitlines() if line[:1].isupper() and " " in line)
        self.assertEqual(lines.get("VERSION"), __version__, out)
        where = os.path.dirname(lines.get("FILE", ""))
        self.assertEqual(os.path.realpath(where), os.path.realpath(os.path.join(project, "tcpcom")), out)
        self.assertEqual(lines.get("REPLY"), "echo: hi", out)


if __name__ == "__main__":
    unittest.main()
