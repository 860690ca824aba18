"""The package's promises agree with what CI checks (issue 16).

CI's version matrix (.ci/matrix.py) is the one list of supported
interpreters: setup.py's classifiers and python_requires and README's
"Supported Pythons" must say exactly that. The version has one source,
tcpcom/_version.py. Every public face ships a stub. (Building the wheel,
installing it and stubtest run in .ci/package; tests/jython/test_jy_install_zip.py
covers the TigerJython zip.)
"""
import importlib.util
import os
import re
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLIC_FACES = ["tcpcom/__init__.pyi", "tcpcom/engine/__init__.pyi", "tcpcom/http.pyi", "tcpcom/udp.pyi",
                "xtcompat/__init__.pyi"]


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def matrix():
    spec = importlib.util.spec_from_file_location("ci_matrix", os.path.join(ROOT, ".ci", "matrix.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup_kwargs():
    """What setup.py passes to setuptools.setup(), captured without building anything."""
    setuptools = pytest.importorskip("setuptools", reason="no setuptools in this venv (Python 3.12+ venvs "
                                     "have none): the default python3 and 3.8 check setup.py")
    captured = {}
    real = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = real
    return captured


def version_tuple(text):
    return tuple(int(p) for p in text.split("."))


def test_classifiers_name_exactly_the_matrix_versions(matrix, setup_kwargs):
    classifiers = setup_kwargs["classifiers"]
    named = sorted((c.rsplit(" :: ", 1)[1] for c in classifiers
                    if re.match(r"Programming Language :: Python :: \d+\.\d+$", c)), key=version_tuple)
    assert named == sorted(matrix.cpython_versions(), key=version_tuple)
    assert ("Programming Language :: Python :: Implementation :: Jython" in classifiers) == \
        any(impl == "Jython" for impl, _, _ in matrix.MATRIX)
    majors = set(v.split(".")[0] for v in named)
    assert majors == set(c.rsplit(" :: ", 1)[1] for c in classifiers
                         if re.match(r"Programming Language :: Python :: \d+$", c))


def test_python_requires_admits_the_matrix_and_nothing_older_or_between(matrix, setup_kwargs):
    from packaging.specifiers import SpecifierSet
    spec = SpecifierSet(setup_kwargs["python_requires"])
    supported = set(matrix.cpython_versions())
    newest = max(supported, key=version_tuple)
    for major, minors in ((2, range(0, 8)), (3, range(0, 20))):
        for minor in minors:
            v = "%d.%d" % (major, minor)
            if version_tuple(v) > version_tuple(newest):
                continue  # no upper bound: newer releases are not refused in advance
            assert spec.contains(v + ".0") == (v in supported), v


def test_readme_promises_the_matrix(matrix):
    m = re.search(r"\*\*Supported Pythons: CPython ([\d., and]+?) and\s+Jython 2\.7", read("README.md"))
    assert m, "README's 'Supported Pythons' sentence is missing"
    promised = re.findall(r"\d+\.\d+", m.group(1))
    assert promised == matrix.cpython_versions()


def test_the_version_has_one_source(setup_kwargs):
    from tcpcom._version import __version__
    assert setup_kwargs["version"] == __version__
    assert "version" not in read("pyproject.toml").split("[build-system]")[0]
    assert not re.search(r"^\s*version\s*=", read("pyproject.toml"), re.M)
    for package in ("tcpcom", "xtcompat"):
        for here, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py") and name != "_version.py":
                    text = read(os.path.relpath(os.path.join(here, name), ROOT))
                    assert not re.search(r"__version__\s*=\s*['\"]", text), name


def test_pyproject_declares_a_build_system():
    text = read("pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        assert re.search(r'^build-backend = "setuptools\.build_meta"$', text, re.M)
        return
    system = tomllib.loads(text)["build-system"]
    assert system["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("setuptools") for r in system["requires"])


def test_every_public_face_has_a_stub_and_the_stubs_ship(setup_kwargs):
    for stub in PUBLIC_FACES:
        assert os.path.isfile(os.path.join(ROOT, stub)), stub
    for package in ("tcpcom", "xtcompat"):
        assert os.path.isfile(os.path.join(ROOT, package, "py.typed"))
    assert set(setup_kwargs["package_data"][""]) >= {"py.typed", "*.pyi"}
    packages = setup_kwargs["packages"]
    assert {"tcpcom", "tcpcom.engine", "xtcompat"} <= set(packages)
    assert not [p for p in packages if p.split(".")[0] not in ("tcpcom", "xtcompat")]


def test_ci_runs_the_matrix_and_the_package_checks_before_the_test_command():
    lines = [line for line in read(".ci", "run").splitlines() if line.strip() and not line.startswith("#")]
    matrix_at = [i for i, line in enumerate(lines) if "python3 .ci/matrix.py" in line]
    package_at = [i for i, line in enumerate(lines) if "bash .ci/package" in line]
    assert matrix_at and package_at
    assert max(matrix_at + package_at) < len(lines) - 1
