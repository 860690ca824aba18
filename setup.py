"""Packaging metadata (the build system is declared in pyproject.toml).

The metadata stays here, not in pyproject.toml's [project] table, because the
setuptools that pip picks on Python 2.7 (44.x) cannot read that table: with
setup.py the sdist still builds there. The version has one source,
tcpcom/_version.py. Keep the classifiers and python_requires what CI's
version matrix checks (.ci/matrix.py; tests/test_packaging.py compares them).
"""
import io
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(*parts):
    with io.open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


def read_version():
    return re.search(r'^__version__ = "([^"]+)"', read("tcpcom", "_version.py"), re.M).group(1)


#: the CPython versions CI's matrix runs (and Jython 2.7); python_requires follows from them
PYTHON_VERSIONS = ["2.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]

setup(
    name="tcpcom",
    version=read_version(),
    description="Threaded TCP/UDP/HTTP engine with the TigerJython tcpcom API and the XTension plugin API",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    packages=find_packages(HERE, include=["tcpcom", "tcpcom.*", "xtcompat", "xtcompat.*"]),
    # the stubs (.pyi) and the PEP 561 marker of every package
    package_data={"": ["py.typed", "*.pyi"]},
    zip_safe=False,  # mypy finds stubs only in a package directory
    python_requires=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*, !=3.5.*, !=3.6.*, !=3.7.*",
    install_requires=[],
    # "docs": the site (python3 -m sphinx -W --keep-going -n -b html docs docs/_build/html). The test
    # extra has it too, so that README's test command builds the site strictly
    # (tests/test_docs_build.py); Sphinx 9 and MyST-Parser 5 need Python 3.11+, older venvs of the
    # matrix leave them out (the build test skips there). Literal lists: .ci/matrix.py reads them.
    extras_require={
        "docs": ["sphinx>=9", "myst-parser>=5"],
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6",
                 "sphinx>=9; python_version >= '3.11'", "myst-parser>=5; python_version >= '3.11'"],
    },
    entry_points={"console_scripts": ["tcpcom = tcpcom.cli:main"]},
    # one wheel for Python 2.7 and 3: the library is pure Python in a syntax both run
    options={"bdist_wheel": {"python_tag": "py2.py3"}},
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Education",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 2",
        "Programming Language :: Python :: 3",
    ] + ["Programming Language :: Python :: %s" % v for v in PYTHON_VERSIONS] + [
        "Programming Language :: Python :: Implementation :: CPython",
        "Programming Language :: Python :: Implementation :: Jython",
        "Topic :: Education",
        "Topic :: System :: Networking",
        "Typing :: Typed",
    ],
)
