"""README's test command is what CI runs (the last line of .ci/run)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_readme_test_command_is_the_last_line_of_ci_run():
    commands = re.findall(r"```sh\n(.*?)\n```", read("README.md"), re.S)
    last = [line for line in read(".ci", "run").splitlines() if line.strip()][-1]
    assert len(commands) >= 2
    assert commands[1] == last
    assert "jython tests/jython/run.py" in last  # both interpreters
