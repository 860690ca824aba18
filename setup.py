import io
import os
import re

from setuptools import setup


def read_version():
    here = os.path.dirname(os.path.abspath(__file__))
    with io.open(os.path.join(here, "tcpcom", "_version.py"), encoding="utf-8") as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


setup(
    name="tcpcom",
    version=read_version(),
    description="Threaded TCP/UDP/HTTP engine with the TigerJython tcpcom API and the XTension plugin API",
    long_description=io.open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=["tcpcom", "tcpcom.engine", "xtcompat"],
    python_requires=">=2.7",
    install_requires=[],
    extras_require={"test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6"]},
    entry_points={"console_scripts": ["tcpcom = tcpcom.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 2.7",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: Implementation :: Jython",
        "Topic :: System :: Networking",
    ],
)
