# Sphinx configuration of tcpcom's documentation site.
# Build (strict: any warning or broken link fails):
#   python3 -m sphinx -W --keep-going -n -b html docs docs/_build/html
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # the library itself, for autodoc
sys.path.insert(0, os.path.join(HERE, "_ext"))     # the site's own extensions

import tcpcom  # noqa: E402

project = "tcpcom"
author = "the tcpcom authors"
release = version = tcpcom.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "statediagram",        # docs/_ext: the state diagrams of docs/diagrams, drawn as SVG
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "*.jsonl"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_title = "tcpcom %s" % release
